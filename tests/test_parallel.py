"""Many independent fits on other engines: scikit-learn searches under Dask (threads and
processes) and Ray give the in-process scores (the README's recipe).

Each recipe runs in a fresh interpreter, as a user's script would (and so that worker threads
and clusters leave nothing behind in the test process).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import joblib
    import numpy as np
    from sklearn.model_selection import GridSearchCV
    import bnn_ppl as bp

    def search(n_jobs=1):
        X = np.random.default_rng(0).normal(size=(60, 2))
        y = (X[:, 0] + 0.3 * X[:, 1] > 0).astype(int)
        est = bp.BNNClassifier((3,), n_iter=150, random_state=0)
        grid = {"prior": [bp.Normal(0.3), bp.Normal(2.0)]}
        search = GridSearchCV(est, grid, cv=2, scoring="neg_log_loss", n_jobs=n_jobs, refit=False)
        return search.fit(X, y).cv_results_["mean_test_score"].tolist()

    if __name__ == "__main__":
        scores = {"in_process": search()}
        if sys.argv[1] == "dask":
            import distributed
            for processes in (False, True):
                with distributed.LocalCluster(n_workers=2 if processes else 1, threads_per_worker=1 if processes else 2,
                                              processes=processes, dashboard_address=":0") as cluster, distributed.Client(cluster):
                    with joblib.parallel_backend("dask"):
                        scores["processes" if processes else "threads"] = search(n_jobs=2)
        else:
            import ray
            from ray.util.joblib import register_ray
            register_ray()
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
            try:
                with joblib.parallel_backend("ray"):
                    scores["ray"] = search(n_jobs=2)
            finally:
                ray.shutdown()
        print(json.dumps(scores))
    """
)


def _run(engine: str, tmp_path) -> dict:
    script = tmp_path / "recipe.py"  # a file: process workers re-import the main module
    script.write_text(_SCRIPT)
    proc = subprocess.run([sys.executable, str(script), engine], capture_output=True, text=True, timeout=600,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(importlib.util.find_spec("distributed") is None, reason="dask.distributed is not installed")
def test_grid_search_under_dask_threads_and_processes_gives_the_in_process_scores(tmp_path):
    scores = _run("dask", tmp_path)
    for workers in ("threads", "processes"):
        np.testing.assert_allclose(scores[workers], scores["in_process"], rtol=1e-6)


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray is not installed (pip install '.[ray]')")
def test_grid_search_under_ray_gives_the_in_process_scores(tmp_path):
    scores = _run("ray", tmp_path)
    np.testing.assert_allclose(scores["ray"], scores["in_process"], rtol=1e-6)

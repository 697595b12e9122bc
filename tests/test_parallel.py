"""Many independent fits on other engines: scikit-learn searches under Dask (threads and
processes) and Ray give the in-process scores (the README's recipe)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV

import bnn_ppl as bp

joblib = pytest.importorskip("joblib")
GRID = {"prior": [bp.Normal(0.3), bp.Normal(2.0)]}


def _search(n_jobs: int = 1) -> GridSearchCV:
    X = np.random.default_rng(0).normal(size=(60, 2))
    y = (X[:, 0] + 0.3 * X[:, 1] > 0).astype(int)
    est = bp.BNNClassifier((3,), n_iter=300, random_state=0)
    return GridSearchCV(est, GRID, cv=2, scoring="neg_log_loss", n_jobs=n_jobs).fit(X, y)


@pytest.fixture(scope="module")
def in_process():
    return _search().cv_results_["mean_test_score"]


@pytest.mark.parametrize("processes", [False, True], ids=["threads", "processes"])
def test_grid_search_under_dask_gives_the_in_process_scores(in_process, processes):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2 if processes else 1, threads_per_worker=1 if processes else 2,
                                  processes=processes, dashboard_address=":0") as cluster, distributed.Client(cluster):
        with joblib.parallel_backend("dask"):
            scores = _search(n_jobs=2).cv_results_["mean_test_score"]
    np.testing.assert_allclose(scores, in_process, rtol=1e-6)


def test_grid_search_under_ray_gives_the_in_process_scores(in_process):
    ray = pytest.importorskip("ray")
    from ray.util.joblib import register_ray

    register_ray()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        with joblib.parallel_backend("ray"):
            scores = _search(n_jobs=2).cv_results_["mean_test_score"]
    finally:
        ray.shutdown()
    np.testing.assert_allclose(scores, in_process, rtol=1e-6)

"""How a fit stops, on every engine: Ctrl-C mid-chunk, divergence, callbacks, swapped-in data."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pymc as pm
import pytensor
import pytest

import bnn_ppl as bp
from bnn_ppl.errors import DataError, FitError
from bnn_ppl.inference.engines import ENGINES

ENGINE_NAMES = [name for name in ("jax", "numba", "pymc") if name in ENGINES]


def _data(n=200, seed=1):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 2))
    return X, (X[:, 0] - X[:, 1] > 0).astype(int)


def _built(batch_size=None):
    spec = bp.Network([bp.Dense(1, "identity")], bp.Bernoulli(), prior=bp.Normal(2.0), bias_prior=bp.Normal(2.0))
    X, y = _data()
    return bp.build_model(spec, X, y, batch_size=batch_size)


@pytest.mark.parametrize("engine", ENGINE_NAMES)
def test_divergence_raises_fit_error_and_keeps_finite_parameters(engine):
    built = _built()
    with pytest.raises(FitError, match="diverged.*learning_rate \\(now 1000000.0\\)") as info:
        bp.fit(built, n=3000, engine=engine, learning_rate=1e6, method="advi", random_seed=0, progressbar=False)
    assert "ParameterValueError: 0 <= p <= 1" not in str(info.value)
    assert "The current approximation of RV" not in str(info.value)  # PyMC's one line per parameter
    params = info.value.approx.groups[0].params_dict
    assert all(np.all(np.isfinite(p.get_value())) for p in params.values())


@pytest.mark.parametrize("engine", ENGINE_NAMES)
def test_a_last_update_that_diverges_is_caught_and_the_parameters_before_it_kept(engine):
    # the loss of a step is taken before its update: the update at the end of a chunk (or of the
    # fit) must be checked too, or the record holds infinite parameters with finite losses
    X, y = _data(40, seed=0)
    built = bp.build_model(bp.Network([bp.Dense(3), bp.Dense(1, "identity")], bp.Bernoulli()), X, y)
    for kwargs in ({"n": 2}, {"n": 50, "callbacks": [lambda approx, losses, i: None], "callback_every": 1}):
        try:
            result = bp.fit(built, engine=engine, learning_rate=1e3, method="advi", random_seed=0,
                            progressbar=False, **kwargs)
        except FitError as err:
            assert "diverged" in str(err) or "became" in str(err)
            assert all(np.isfinite(v).all() for v in err.posterior.values().values())
        else:
            assert all(np.isfinite(v).all() for v in result.params().values())


@pytest.mark.parametrize("engine", ENGINE_NAMES)
def test_callbacks_run_every_n_steps_and_a_convergence_stop_is_not_an_interrupt(engine):
    seen = []

    def stop_at_300(approx, losses, i):
        seen.append(int(i))
        if i >= 300:
            raise StopIteration

    r = bp.fit(_built(), n=5000, engine=engine, method="advi", random_seed=0, progressbar=False, callbacks=[stop_at_300],
               callback_every=100)
    assert r.stop_reason == "callback" and not r.interrupted
    if engine == "pymc":
        assert seen[:3] == [1, 2, 3] and r.n_steps in (299, 300)  # PyMC calls them after every step
    else:
        assert seen == [100, 200, 300] and r.n_steps == 300
    converge = pm.variational.callbacks.CheckParametersConvergence(every=100, tolerance=0.5, diff="relative")
    r = bp.fit(_built(), n=20_000, engine=engine, method="advi", random_seed=0, progressbar=False, callbacks=[converge],
               callback_every=100)
    assert r.stop_reason == "callback" and r.n_steps < 20_000


@pytest.mark.parametrize("seed", [-1, 1.5, True, "0"])
def test_bad_seeds_are_refused_by_every_random_path_naming_it(seed):
    built = _built()
    message = "The 'random_seed' parameter of {} must be a non-negative integer"
    X, y = _data(10)
    with pytest.raises(bp.ParameterError, match=message.format("build_model")):
        bp.build_model(built.spec, X, y, random_seed=seed)
    with pytest.raises(bp.ParameterError, match=message.format("fit")):
        bp.fit(built, n=10, random_seed=seed, progressbar=False)
    result = bp.fit(built, n=10, random_seed=np.int64(3), progressbar=False)
    assert result.random_seed == 3
    for call, name in ((lambda: result.predictor().sample(X, draws=2, random_seed=seed), "Predictor"),
                       (lambda: result.to_datatree(draws=2, random_seed=seed), "to_datatree"),
                       (lambda: result.description_length(draws=2, random_seed=seed), "description_length")):
        with pytest.raises(bp.ParameterError, match=message.format(name)):
            call()
    # a numpy Generator is a seed for the predictive paths
    assert result.predictor().sample(X, draws=2, random_seed=np.random.default_rng(0)).shape == (2, 10)


def test_pymc_engine_is_silent_without_progressbar(capfd):
    bp.fit(_built(), n=50, engine="pymc", random_seed=0, progressbar=False)
    out, err = capfd.readouterr()
    assert "Finished" not in out + err


def test_fitting_after_set_data_with_other_rows_is_refused(tmp_path):
    built = _built(batch_size=20)
    X_test, y_test = _data(n=123, seed=2)
    with built.model:
        pm.set_data({"X": X_test, "y": y_test})
    with pytest.raises(DataError, match=r"hold \[123\] rows but it was built on 200.*bp.build_model"):
        bp.fit(built, n=10, progressbar=False)
    X, y = _data(seed=3)  # the same number of rows: fitting on them is fine, and they become the training rows
    with built.model:
        pm.set_data({"X": X, "y": y})
    result = bp.fit(built, n=10, progressbar=False, random_seed=0)
    assert result.n_steps == 10
    # rows of the same size swapped in after the fit (test data, the notebook's pattern) are not training data
    X_other, y_other = _data(seed=4)
    with built.model:
        pm.set_data({"X": X_other, "y": y_other})
    for call, purpose in ((lambda: result.description_length(draws=5), "description_length"),
                          (lambda: result.to_datatree(draws=5), "to_datatree")):
        with pytest.raises(DataError, match=f"hold other rows than it was built .or last fitted. on.*; {purpose}"):
            call()
    with pytest.raises(bp.ModelFileError, match="hold other rows than it was built"):
        result.save(tmp_path / "swapped.bnn")
    with built.model:  # the training rows back (copies are fine): everything works again
        pm.set_data({"X": X.copy(), "y": y.copy()})
    assert result.to_datatree(draws=5, random_seed=0).observed_data["y_obs"].values.tolist() == y.tolist()
    # the whole likelihood for PyMC's own tools (set_data + sample_posterior_predictive need it)
    full = built.full_batch()
    assert full.batch_size is None and full.X_data.get_value().shape == (200, 2)
    assert [rv.name for rv in full.model.free_RVs] == [rv.name for rv in built.model.free_RVs]


def test_set_data_takes_float_labels_as_the_seed_notebook_passes_them():
    """Issue 12 item 11: ``pm.set_data({"y": Y_test})`` with float 0./1. labels (the notebook's floatX)."""
    built = _built()
    X, y = _data(seed=4)
    with built.model:
        pm.set_data({"X": X, "y": y.astype("float64")})  # PyTensor's "cannot store float64" before
        assert built.model["y"].get_value().dtype == np.dtype(pytensor.config.floatX)
        pm.set_data({"y": y})  # integer labels still go in
    np.testing.assert_array_equal(built.targets(), y)
    assert built.targets().dtype == np.int64
    assert bp.fit(built, n=10, progressbar=False, random_seed=0).n_steps == 10
    with built.model:
        pm.set_data({"y": np.full(200, 0.5)})
    with pytest.raises(DataError, match=r"The 'y' container \(set by pm.set_data\) must hold integer class labels"):
        bp.fit(built, n=10, progressbar=False)


_SIGINT_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import bnn_ppl as bp

    rng = np.random.default_rng(0)
    X = rng.normal(size=(3000, 8))
    y = (X[:, 0] > 0).astype(int)
    spec = bp.Network([bp.Dense(64), bp.Dense(1, "identity")], bp.Bernoulli())
    for engine in sys.argv[1:]:
        built = bp.build_model(spec, X, y)
        announced = []

        def ready(approx, losses, i):
            if not announced:
                announced.append(i)
                print("READY", flush=True)  # the parent sends SIGINT now, while the next chunk runs

        r = bp.fit(built, n=10**7, engine=engine, method="advi", random_seed=0, progressbar=False, callbacks=[ready],
                   callback_every=None if engine == "pymc" else 200)
        mu = r.params()["mu"]
        print(json.dumps({"engine": engine, "interrupted": r.interrupted, "reason": r.stop_reason,
                          "steps": r.n_steps, "finite": bool(np.all(np.isfinite(mu)))}), flush=True)
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_during_the_engines_set_up_stops_after_the_first_chunk(monkeypatch):
    pytest.importorskip("jax")
    from bnn_ppl.inference.engines import jax_engine

    original = jax_engine.use_persistent_cache

    def set_up_then_ctrl_c():
        os.kill(os.getpid(), signal.SIGINT)  # as if the user pressed Ctrl-C while the engine compiles
        return original()

    monkeypatch.setattr(jax_engine, "use_persistent_cache", set_up_then_ctrl_c)
    result = bp.fit(_built(), n=5000, engine="jax", callback_every=1000, random_seed=0, progressbar=False)
    assert result.interrupted and result.stop_reason == "interrupted" and result.n_steps == 1000
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is put back


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_mid_chunk_returns_the_last_good_parameters_on_every_engine(tmp_path):
    script = tmp_path / "fit_then_sigint.py"
    script.write_text(_SIGINT_SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script), *ENGINE_NAMES], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    rows = []
    try:
        for line in proc.stdout:
            if line.strip() == "READY":
                proc.send_signal(signal.SIGINT)
            elif line.startswith("{"):
                rows.append(json.loads(line))
        proc.wait(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 0, proc.stderr.read()
    assert [row["engine"] for row in rows] == ENGINE_NAMES
    for row in rows:
        assert row["interrupted"] and row["reason"] == "interrupted" and row["finite"], row
        assert 0 < row["steps"] < 10**7

"""fit(): the FitResult record, argument errors, initialisation, reproducibility, accuracy."""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytest

import bnn_ppl as bp
from bnn_ppl.errors import FitError, ParameterError
from bnn_ppl.inference.engines import ENGINES, resolve_engine
from bnn_ppl.spec import Bernoulli, Dense, Network, Normal

DEFAULT_ENGINE = resolve_engine("auto")
OTHER_ENGINES = [name for name in ENGINES.names() if name != DEFAULT_ENGINE]


def _data(n=60, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 2))
    return X, (X[:, 0] + X[:, 1] > 0).astype(int)


def _built(batch_size=None):
    X, y = _data()
    return bp.build_model(Network([Dense(3), Dense(1, "identity")], Bernoulli(), prior=Normal(1.0)), X, y, batch_size)


def _n_params():
    return 2 * 3 + 3 + 3 * 1 + 1


@pytest.fixture(scope="module")
def small_fit():
    return bp.fit(_built(), n=2000, method="advi", random_seed=0, progressbar=False)


# ---------------------------------------------------------------- the record
def test_fit_result_fields(small_fit):
    r = small_fit
    assert isinstance(r, bp.FitResult)
    assert isinstance(r.approx, pm.MeanField) if hasattr(pm, "MeanField") else r.approx.groups[0].short_name == "mean_field"
    assert r.method == "advi" and r.engine == DEFAULT_ENGINE and isinstance(r.backend, str) and r.backend
    assert r.n_steps == 2000 and r.losses.shape == (2000,) and np.all(np.isfinite(r.losses))
    assert r.random_seed == 0 and r.learning_rate == 0.01 and r.interrupted is False
    assert set(r.timings) >= {"setup_s", "compile_s", "fit_s", "total_s"}
    assert r.timings["total_s"] >= r.timings["fit_s"] > 0 and r.timings["setup_s"] >= 0
    assert r.final_loss == pytest.approx(np.mean(r.losses[-200:]))
    params = r.params()
    assert set(params) == {"mu", "rho"} and params["mu"].shape == params["rho"].shape == (_n_params(),)
    assert r.spec is r.built.spec and r.spec.input_dim == 2


def test_loss_decreases_and_the_fit_learns(small_fit):
    losses = small_fit.losses
    assert np.mean(losses[-200:]) < 0.6 * np.mean(losses[:50])
    X, y = _data(200, seed=1)
    assert np.mean(small_fit.predictor().predict(X, draws=200, random_seed=0) == y) > 0.9


def test_params_are_written_back_into_the_pymc_approximation(small_fit):
    """The approximation is a usable PyMC object: its own sampler sees the fitted means."""
    mu = small_fit.params()["mu"]
    dt = small_fit.approx.sample(2000, random_seed=0)
    group = small_fit.approx.groups[0]
    sl = group.ordering["dense_0_w"][1]
    got = dt.posterior["dense_0_w"].values.reshape(2000, -1).mean(0)
    sigma = np.logaddexp(0, small_fit.params()["rho"][sl])
    assert np.all(np.abs(got - mu[sl]) < 5 * sigma / np.sqrt(2000))


# ---------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("kwargs", "fragments"),
    [
        ({"n": 0}, ["'n' parameter of fit", "positive integer", "Got 0"]),
        ({"n": 2.5}, ["'n'", "Got 2.5"]),
        ({"n": True}, ["'n'", "Got True"]),
        ({"n": 10**20}, ["'n' parameter of fit asks for 100,000,000,000,000,000,000 steps", "MAX_STEPS"]),
        ({"method": "svgd"}, ["'method'", "['advi', 'fullrank_advi', 'lowrank_advi', 'unitrank_advi']", "Got 'svgd'"]),
        ({"backend": "gpu"}, ["'backend'", "'numba'", "'jax'", "Got 'gpu'"]),
        ({"learning_rate": 0}, ["'learning_rate'", "positive finite number", "Got 0"]),
        ({"learning_rate": -0.1}, ["'learning_rate'", "Got -0.1"]),
        ({"init_sigma": "big"}, ["'init_sigma'", "Got 'big'"]),
        ({"lr_floor": 0}, ["'lr_floor'", "(0, 1]", "Got 0"]),
        ({"init_sigma": float("inf")}, ["'init_sigma'", "positive finite number", "Got inf"]),
        ({"learning_rate": np.bool_(True)}, ["'learning_rate'", "Got np.True_"]),
        ({"engine": "warp"}, ["'engine' parameter", f"{['auto', *ENGINES.names()]}", "Got 'warp'"]),
        ({"engine": ["jax"]}, ["'engine' parameter", "Got ['jax']"]),
        ({"callbacks": [42]}, ["'callbacks' parameter", "list of functions", "Got [42]"]),
        ({"callbacks": print}, ["'callbacks' parameter", "wrap one function in a list"]),
    ],
)
def test_bad_arguments_raise_before_fitting(kwargs, fragments):
    with pytest.raises(ParameterError) as info:
        bp.fit(_built(), **{"progressbar": False, **kwargs})
    for fragment in fragments:
        assert fragment in str(info.value), f"{fragment!r} missing from: {info.value}"


def test_pymc_minibatch_draws_are_refused_before_compiling():
    X = np.random.default_rng(0).normal(size=(40, 2))
    mini = bp.build_model(Network([Dense(1, "identity")], Bernoulli()), X, (X[:, 0] > 0).astype(int), batch_size=8)
    with pytest.raises(ParameterError, match="engine='pymc' cannot average mc_draws=2 draws per step on a minibatch"):
        bp.fit(mini, n=5, engine="pymc", mc_draws=2, method="advi", progressbar=False)


def test_numpy_scalars_are_settings_too():
    a = bp.fit(_built(), n=20, learning_rate=np.float32(0.05), init_sigma=np.float32(0.2), lr_floor=np.float64(0.5),
               random_seed=0, progressbar=False)
    b = bp.fit(_built(), n=20, learning_rate=float(np.float32(0.05)), init_sigma=float(np.float32(0.2)), lr_floor=0.5,
               random_seed=0, progressbar=False)
    np.testing.assert_array_equal(a.losses, b.losses)


def test_fit_needs_a_built_model():
    with pytest.raises(ParameterError, match="fit needs a BuiltModel from build_model"):
        bp.fit(Network([Dense(1, "identity")], Bernoulli()))


def test_divergence_raises_fit_error():
    with pytest.raises(FitError, match=r"NaN or infinite.*Lower learning_rate \(now 100000000.0\)"):
        bp.fit(_built(), n=300, learning_rate=1e8, random_seed=0, progressbar=False)


# ---------------------------------------------------------------- initialisation
def test_initial_point_breaks_symmetry_with_the_requested_sigma():
    """After one step with a negligible learning rate the parameters are the initial ones."""
    a = bp.fit(_built(), n=1, learning_rate=1e-12, init_sigma=0.25, method="advi", random_seed=3, progressbar=False).params()
    b = bp.fit(_built(), n=1, learning_rate=1e-12, init_sigma=0.25, method="advi", random_seed=4, progressbar=False).params()
    np.testing.assert_allclose(np.logaddexp(0, a["rho"]), 0.25, rtol=1e-6)
    assert np.all(a["mu"] != 0) and not np.allclose(a["mu"], b["mu"])
    assert 0.2 < np.std(a["mu"]) < 1.5  # random N(0, ~1/sqrt(fan_in)) means, not zeros


# ---------------------------------------------------------------- methods and reproducibility
def test_fullrank_advi_on_a_tiny_net():
    r = bp.fit(_built(), n=1500, method="fullrank_advi", random_seed=1, progressbar=False)
    d = _n_params()
    params = r.params()
    assert r.method == "fullrank_advi" and set(params) == {"mu", "L_tril"}
    assert params["L_tril"].shape == (d * (d + 1) // 2,)
    assert r.approx.groups[0].short_name == "full_rank"
    assert np.mean(r.losses[-200:]) < 0.6 * np.mean(r.losses[:50])
    X, y = _data(200, seed=1)
    assert np.mean(r.predictor().predict(X, draws=200, random_seed=0) == y) > 0.9


def test_same_seed_same_fit_different_seed_different_fit(small_fit):
    again = bp.fit(_built(), n=2000, method="advi", random_seed=0, progressbar=False)
    np.testing.assert_array_equal(again.losses, small_fit.losses)
    np.testing.assert_array_equal(again.params()["mu"], small_fit.params()["mu"])
    other = bp.fit(_built(), n=50, method="advi", random_seed=1, progressbar=False)
    assert not np.allclose(other.losses, small_fit.losses[:50])


def test_minibatch_fit_uses_total_size_scaling():
    """A minibatch loss estimates the full-data loss (N/B scaling), not the batch loss."""
    full = bp.fit(_built(), n=1500, method="advi", random_seed=2, progressbar=False)
    mini = bp.fit(_built(batch_size=15), n=1500, method="advi", random_seed=2, progressbar=False)
    assert mini.built.batch_size == 15
    assert mini.final_loss == pytest.approx(full.final_loss, rel=0.35)


def test_callback_stop_iteration_stops_early_and_keeps_parameters():
    calls = []

    def stop(approx, losses, i):
        calls.append(i)
        if len(losses) >= 1000:
            raise StopIteration

    r = bp.fit(_built(), n=5000, random_seed=0, progressbar=False, callbacks=[stop])
    assert r.stop_reason == "callback" and not r.interrupted  # a convergence stop is not Ctrl-C
    assert 1000 <= r.n_steps < 5000 and r.losses.size == r.n_steps
    assert calls and all(isinstance(i, int | np.integer) for i in calls)
    assert np.all(np.isfinite(r.params()["mu"]))


@pytest.mark.slow
@pytest.mark.parametrize("engine", OTHER_ENGINES)
def test_every_engine_is_reproducible_and_agrees_with_the_default(small_fit, engine):
    # the numba scan runs a correlated family (full-rank: dense engine form, scaled steps) too
    method = "fullrank_advi" if engine == "numba" else "advi"
    reference = small_fit if method == "advi" else bp.fit(_built(), n=2000, method=method, random_seed=0,
                                                          progressbar=False)
    a = bp.fit(_built(), n=2000, engine=engine, method=method, random_seed=0, progressbar=False)
    b = bp.fit(_built(), n=2000, engine=engine, method=method, random_seed=0, progressbar=False)
    assert a.engine == engine and a.method == method
    np.testing.assert_array_equal(a.losses, b.losses)
    # same objective and optimiser: the converged loss matches the default engine's within MC noise
    assert a.final_loss == pytest.approx(reference.final_loss, rel=0.1)


# ---------------------------------------------------------------- accuracy (the bar)
def test_moons_accuracy_with_library_defaults(moons, moons_fit):
    _, X_test, _, y_test = moons
    assert moons_fit.n_steps == 30_000 and moons_fit.random_seed == 0
    accuracy = np.mean(moons_fit.predictor().predict(X_test, draws=500, random_seed=0) == y_test)
    assert accuracy >= 0.954


DIGITS_STEPS = 20_000


@pytest.mark.slow  # ~20 s: 20k minibatch steps of a 2,410-parameter net
def test_digits_accuracy_with_minibatch_128(digits):
    X_train, X_test, y_train, y_test = digits
    built = bp.build_model(bp.load_spec("models/digits.toml"), X_train, y_train, batch_size=128)
    result = bp.fit(built, n=DIGITS_STEPS, random_seed=0, progressbar=False)
    accuracy = np.mean(result.predictor().predict(X_test, draws=500, random_seed=0) == y_test)
    assert accuracy >= 0.965

"""Posterior predictive: compiled once, any rows, agrees with PyMC, summaries and chunking."""

from __future__ import annotations

import warnings

import numpy as np
import pymc as pm
import pytest
from pytensor.compile.maker import FunctionMaker
from scipy import special, stats

import bnn_ppl as bp
from bnn_ppl.errors import DataError, ParameterError
from bnn_ppl.predictive import Predictor, summarise_classification, summarise_regression
from bnn_ppl.spec import Bernoulli, Categorical, Dense, Network, Normal, NormalLikelihood

STEPS = 600


def _binary_data(n=60, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 2))
    return X, (X[:, 0] * X[:, 1] > 0).astype(int)


def _binary_spec():
    return Network([Dense(4), Dense(1, "identity")], Bernoulli(), prior=Normal(1.0))


@pytest.fixture(scope="module")
def binary_fit():
    X, y = _binary_data()
    return bp.fit(bp.build_model(_binary_spec(), X, y), n=STEPS, method="advi", random_seed=0, progressbar=False, lr_floor=1.0)


@pytest.fixture(scope="module")
def minibatch_fit():
    X, _ = _binary_data()
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    return bp.fit(bp.build_model(_binary_spec(), X, y, batch_size=16), n=STEPS, method="advi", random_seed=1, progressbar=False, lr_floor=1.0)


@pytest.fixture(scope="module")
def categorical_fit(tiny_classification):
    X, y = tiny_classification
    spec = Network([Dense(5), Dense(3, "identity")], Categorical(3))
    return bp.fit(bp.build_model(spec, X, y), n=STEPS, method="advi", random_seed=2, progressbar=False, lr_floor=1.0)


@pytest.fixture(scope="module")
def regression_fit():
    rng = np.random.default_rng(3)
    X = rng.uniform(-2, 2, size=(50, 1))
    y = 0.8 * X[:, 0] + 0.3 * rng.normal(size=50)
    spec = Network([Dense(3), Dense(1, "identity")], NormalLikelihood(1.0), prior=Normal(1.0))
    return bp.fit(bp.build_model(spec, X, y), n=3000, method="advi", random_seed=3, progressbar=False)


@pytest.fixture
def count_compiles(monkeypatch):
    """Counts every PyTensor function compilation (all of them go through FunctionMaker)."""
    calls = []
    original = FunctionMaker.__init__

    def counting(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(FunctionMaker, "__init__", counting)
    return calls


def _z_max(a, b):
    """Largest |z| of per-row differences between two sets of draws (draws, rows)."""
    se = np.sqrt(a.var(0) / len(a) + b.var(0) / len(b)) + 1e-12
    return np.max(np.abs(a.mean(0) - b.mean(0)) / se)


# ---------------------------------------------------------------- compile once
@pytest.mark.parametrize("kind", ["auto", "sample_node"])
def test_compiled_once_across_calls_rows_and_draws(binary_fit, count_compiles, kind):
    binary_fit._predictors.pop((None, kind), None)  # start from an empty cache whatever ran before
    binary_fit.approx  # noqa: B018 - PyMC's approximation is made on first use, with its own initial-point compile
    count_compiles.clear()
    pred = binary_fit.predictor(kind=kind)
    # sample_node compiles PyMC's scan; the batched sampler of Normal-prior weights slices the
    # draws and compiles nothing
    assert len(count_compiles) == pred.n_compiles == (1 if kind == "sample_node" else 0)
    assert binary_fit.predictor(kind=kind) is pred
    fn = pred.sampler.functions
    rng = np.random.default_rng(0)
    for rows, draws in [(1, 1), (7, 3), (60, 50), (333, 20)]:
        out = pred.sample(rng.normal(size=(rows, 2)), draws=draws, random_seed=rows)
        assert out.shape == (draws, rows) and np.all((out >= 0) & (out <= 1))
    pred.uncertainty(rng.normal(size=(5, 2)), draws=10, random_seed=0)
    pred.predict(rng.normal(size=(5, 2)), draws=10, random_seed=0)
    assert len(count_compiles) == pred.n_compiles and pred.sampler.functions == fn


def test_auto_kind_is_batched_and_kinds_are_validated(binary_fit):
    assert binary_fit.predictor().kind == "batched"
    with pytest.raises(ParameterError, match=r"'kind' parameter must be one of \['auto', 'batched', 'sample_node'\]. Got 'fast'"):
        binary_fit.predictor(kind="fast")
    with pytest.raises(ParameterError, match="kind='sample_node' cannot use backend='jax'.*kind='batched'"):
        binary_fit.predictor(backend="jax", kind="sample_node")


def test_jax_backend_matches_the_default_backend(binary_fit):
    X, _ = _binary_data()
    a = binary_fit.predictor(backend="jax").sample(X, draws=30, random_seed=2)
    np.testing.assert_allclose(a, binary_fit.predictor().sample(X, draws=30, random_seed=2), rtol=1e-6)


# ---------------------------------------------------------------- known answers
def test_near_zero_sigma_gives_the_forward_pass_at_the_mean(binary_fit):
    """With sigma -> 0 every draw is the network at mu: compare with a numpy forward pass."""
    X, _ = _binary_data()
    group = binary_fit.approx.groups[0]
    rho = group.params_dict["rho"]
    saved = rho.get_value()
    try:
        rho.set_value(np.full_like(saved, -30.0))  # softplus(-30) ~ 1e-13
        mu = group.params_dict["mu"].get_value()
        w = {name: mu[slc].reshape(shape) for name, (_, slc, shape, _) in group.ordering.items()}
        logits = np.tanh(X @ w["dense_0_w"] + w["dense_0_b"]) @ w["dense_1_w"] + w["dense_1_b"]
        expected = special.expit(logits[:, 0])
        for kind in ("batched", "sample_node"):
            draws = binary_fit.predictor(kind=kind).sample(X, draws=4, random_seed=0)
            np.testing.assert_allclose(draws, np.broadcast_to(expected, draws.shape), rtol=1e-8, atol=1e-10)
    finally:
        rho.set_value(saved)


def test_agrees_with_pymc_sample_posterior_predictive(binary_fit):
    """Per-row frequency of y=1 from PyMC's route matches the predictor's mean p within MC error."""
    built = binary_fit.built
    X, _ = _binary_data()
    draws = 1000
    with built.model:
        trace = binary_fit.approx.sample(draws, random_seed=11)
        ppc = pm.sample_posterior_predictive(
            trace, var_names=["y_obs"], random_seed=12, progressbar=False, compile_kwargs={"mode": "FAST_COMPILE"}
        )
    y_pymc = ppc.posterior_predictive["y_obs"].values.reshape(draws, -1)
    p = binary_fit.predictor().sample(X, draws=4000, random_seed=13)
    freq, p_bar = y_pymc.mean(0), p.mean(0)
    se = np.sqrt(p_bar * (1 - p_bar) / draws + p.var(0) / len(p)) + 1e-9
    z = (freq - p_bar) / se
    assert np.max(np.abs(z)) < 4.5
    assert stats.chi2.sf(np.sum(z**2), df=z.size) > 1e-3
    # the rows differ (not a trivially constant prediction)
    assert p_bar.max() - p_bar.min() > 0.3


def test_sample_node_and_batched_agree_in_distribution(binary_fit, categorical_fit, tiny_classification):
    X, _ = _binary_data()
    a = binary_fit.predictor(kind="batched").sample(X, draws=1000, random_seed=1)
    b = binary_fit.predictor(kind="sample_node").sample(X, draws=1000, random_seed=2)
    assert _z_max(a, b) < 4.5
    np.testing.assert_allclose(a.std(0), b.std(0), rtol=0.15, atol=0.01)
    Xc, _ = tiny_classification
    a = categorical_fit.predictor(kind="batched").sample(Xc, draws=600, random_seed=3)
    b = categorical_fit.predictor(kind="sample_node").sample(Xc, draws=600, random_seed=4)
    assert a.shape == b.shape == (600, 90, 3)
    for k in range(3):
        assert _z_max(a[..., k], b[..., k]) < 4.5


def test_fullrank_predictor_kinds_agree():
    X, y = _binary_data()
    result = bp.fit(bp.build_model(_binary_spec(), X, y), n=300, method="fullrank_advi", random_seed=5, progressbar=False)
    a = result.predictor(kind="batched").sample(X, draws=1000, random_seed=1)
    b = result.predictor(kind="sample_node").sample(X, draws=1000, random_seed=2)
    assert _z_max(a, b) < 4.5
    np.testing.assert_allclose(a.std(0), b.std(0), rtol=0.15, atol=0.01)


# ---------------------------------------------------------------- rows, seeds
def test_minibatch_trained_model_predicts_any_number_of_rows(minibatch_fit):
    assert minibatch_fit.built.batch_size == 16
    X, _ = _binary_data()
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    for kind in ("batched", "sample_node"):
        pred = minibatch_fit.predictor(kind=kind)
        assert pred.sample(X, draws=5, random_seed=0).shape == (5, 60)
        assert pred.sample(np.zeros((1, 2)), draws=5, random_seed=0).shape == (5, 1)
        assert pred.sample(np.ones((250, 2)), draws=2, random_seed=0).shape == (2, 250)
    accuracy = np.mean(minibatch_fit.predictor().predict(X, draws=200, random_seed=0) == y)
    assert accuracy > 0.85  # it learned the boundary from minibatches of 16


@pytest.mark.parametrize("kind", ["batched", "sample_node"])
def test_same_seed_same_draws(binary_fit, kind):
    pred = binary_fit.predictor(kind=kind)
    X, _ = _binary_data()
    a = pred.sample(X, draws=20, random_seed=7)
    np.testing.assert_array_equal(a, pred.sample(X, draws=20, random_seed=7))
    assert not np.allclose(a, pred.sample(X, draws=20, random_seed=8))
    # the same posterior draw is used for every row: row i of a subset equals row i of the full set
    np.testing.assert_allclose(pred.sample(X[:10], draws=20, random_seed=7), a[:, :10], rtol=1e-12)


# ---------------------------------------------------------------- summaries
def test_bernoulli_summaries(binary_fit):
    X, _ = _binary_data()
    pred = binary_fit.predictor()
    u = pred.uncertainty(X, draws=300, random_seed=5)
    ref = summarise_classification(pred.sample(X, draws=300, random_seed=5))
    for field in ("proba", "std", "entropy", "expected_entropy", "mutual_information"):
        np.testing.assert_allclose(getattr(u, field), getattr(ref, field), rtol=1e-9, atol=1e-12)
    assert u.proba.shape == (60, 2)
    np.testing.assert_allclose(u.proba.sum(1), 1.0, rtol=1e-12)
    assert np.all(u.mutual_information >= 0) and np.all(u.entropy <= np.log(2) + 1e-12)
    np.testing.assert_allclose(u.entropy, u.expected_entropy + u.mutual_information, atol=1e-12)
    np.testing.assert_array_equal(pred.predict(X, draws=300, random_seed=5), u.proba.argmax(1))
    np.testing.assert_allclose(pred.predict_proba(X, draws=300, random_seed=5), u.proba)


def test_categorical_summaries(categorical_fit, tiny_classification):
    X, y = tiny_classification
    pred = categorical_fit.predictor()
    u = pred.uncertainty(X, draws=300, random_seed=6)
    draws = pred.sample(X, draws=300, random_seed=6)
    np.testing.assert_allclose(draws.sum(-1), 1.0, rtol=1e-10)
    np.testing.assert_allclose(u.proba, draws.mean(0), rtol=1e-9)
    np.testing.assert_allclose(u.proba.sum(1), 1.0, rtol=1e-12)
    assert np.all(u.mutual_information >= 0)
    np.testing.assert_allclose(u.entropy, u.expected_entropy + u.mutual_information, atol=1e-12)
    # hand entropy of the mean, and expected entropy of the draws
    np.testing.assert_allclose(u.entropy, -(u.proba * np.log(u.proba)).sum(1), rtol=1e-9)
    np.testing.assert_allclose(u.expected_entropy, -(draws * np.log(draws)).sum(-1).mean(0), rtol=1e-9)
    assert np.mean(pred.predict(X, draws=300, random_seed=6) == y) > 0.8


def test_mutual_information_grows_away_from_the_data(binary_fit):
    """Epistemic uncertainty is larger far from the training inputs than on them."""
    X, _ = _binary_data()
    far = np.random.default_rng(0).normal(size=(60, 2)) * 8.0
    pred = binary_fit.predictor()
    near_mi = pred.uncertainty(X, draws=500, random_seed=0).mutual_information.mean()
    far_mi = pred.uncertainty(far, draws=500, random_seed=0).mutual_information.mean()
    assert far_mi > near_mi


def test_regression_decomposition(regression_fit):
    X = np.linspace(-2, 2, 25)[:, None]
    pred = regression_fit.predictor()
    u = pred.uncertainty(X, draws=400, random_seed=9)
    means = pred.sample(X, draws=400, random_seed=9)
    sigmas = pred.sample_noise(draws=400, random_seed=9)
    ref = summarise_regression(means, sigmas)
    for field in ("mean", "epistemic_var", "aleatoric_var", "total_var"):
        np.testing.assert_allclose(getattr(u, field), getattr(ref, field), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(u.total_var, u.epistemic_var + u.aleatoric_var, rtol=1e-12)
    np.testing.assert_allclose(u.std, np.sqrt(u.total_var))
    np.testing.assert_allclose(pred.predict(X, draws=400, random_seed=9), u.mean)
    assert np.all(sigmas > 0) and np.all(u.epistemic_var > 0)
    # E_q[sigma^2] for sigma = exp(m + s z): exp(2m + 2s^2), from the approximation's parameters
    group = regression_fit.approx.groups[0]
    slc = group.ordering["sigma_log__"][1]
    m = group.params_dict["mu"].get_value()[slc][0]
    s = np.logaddexp(0, group.params_dict["rho"].get_value()[slc][0])
    many = pred.sample_noise(draws=20_000, random_seed=1)
    np.testing.assert_allclose(np.mean(many**2), np.exp(2 * m + 2 * s**2), rtol=0.03)
    np.testing.assert_allclose(u.aleatoric_var, np.mean(sigmas**2))
    # the fit recovers the noise of the data (0.3) and the slope (0.8)
    assert 0.2 < np.sqrt(u.aleatoric_var[0]) < 0.45
    np.testing.assert_allclose(np.polyfit(X[:, 0], u.mean, 1)[0], 0.8, atol=0.25)
    with pytest.raises(DataError, match="predict_proba needs a Bernoulli or Categorical"):
        pred.predict_proba(X)


@pytest.mark.parametrize("kind", ["batched", "sample_node"])
def test_a_known_noise_sigma_is_the_aleatoric_variance_whatever_the_draws(kind):
    rng = np.random.default_rng(0)
    X = rng.uniform(-2, 2, (50, 1))
    spec = bp.Network([bp.Dense(3), bp.Dense(1, "identity")], bp.NormalLikelihood(sigma=0.3))
    result = bp.fit(bp.build_model(spec, X, 0.5 * X[:, 0]), n=50, method="advi", random_seed=0, progressbar=False)
    pred = result.predictor(kind=kind)
    for draws in (1, 7, 300):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # one draw: no epistemic estimate
            u = pred.uncertainty(X[:4], draws=draws, random_seed=0)
        np.testing.assert_allclose(u.aleatoric_var, 0.09, rtol=1e-6)
    np.testing.assert_allclose(pred.sample_noise(draws=5, random_seed=0), 0.3, rtol=1e-6)


def test_evaluate_streams_within_the_budget_and_scores_as_a_whole(binary_fit, regression_fit):
    from bnn_ppl.predictive import evaluate

    rng = np.random.default_rng(4)
    Xr = rng.uniform(-2, 2, size=(400, 1))
    yr = 0.8 * Xr[:, 0] + 0.3 * rng.normal(size=400)
    X, y = _binary_data()
    for fit, Xs, ys in ((binary_fit, X, y), (regression_fit, Xr, yr)):
        full = fit.predictor()
        tiny = Predictor(full.sampler, full.spec, memory_budget_mb=0.002)
        tiny.MIN_CHUNK_ROWS = 8
        draws_per_chunk, rows_per_chunk = tiny._chunks(Xs.shape[0], 300)
        assert draws_per_chunk < 300 and rows_per_chunk < Xs.shape[0]
        a, b = evaluate(tiny, Xs, ys, draws=300, random_seed=1), evaluate(full, Xs, ys, draws=300, random_seed=1)
        assert a.rows == b.rows == Xs.shape[0] and a.accuracy == b.accuracy and a.coverage.keys() == b.coverage.keys()
        np.testing.assert_allclose(a.lpd, b.lpd, rtol=1e-10)
        for level in a.coverage:
            assert a.coverage[level] == pytest.approx(b.coverage[level], abs=1e-12)
    # the same draws as predict with the seed; a Generator pairs each draw's mean with its own sigma
    assert evaluate(full, Xr, yr, draws=300, random_seed=1).rmse == pytest.approx(
        float(np.sqrt(np.mean((full.predict(Xr, draws=300, random_seed=1) - yr) ** 2))), rel=1e-10)
    paired = []  # the draws' means and sigmas as the predictor yields them together
    for ds, rs, (mean, sigma) in full._iter_draws(Xr, 50, np.random.default_rng(7)):
        sigma = np.broadcast_to(sigma, (ds.stop - ds.start,))[:, None]
        paired.append((rs, -0.5 * ((yr[rs] - mean) / sigma) ** 2 - np.log(sigma) - 0.5 * np.log(2 * np.pi)))
    log_dens = np.concatenate([d for _, d in paired], axis=0)
    expected = np.mean(np.log(np.mean(np.exp(log_dens), axis=0)))
    got = evaluate(full, Xr, yr, draws=50, random_seed=np.random.default_rng(7)).lpd
    assert got == pytest.approx(expected, rel=1e-9)
    # bounded memory: a 1000 x 2000 call through a 0.05 MB predictor holds chunks, not the 15 MB of draws
    import tracemalloc

    small = Predictor(full.sampler, full.spec, memory_budget_mb=0.05)
    X_big = np.linspace(-2, 2, 2000)[:, None]
    tracemalloc.start()
    try:
        evaluate(small, X_big, X_big[:, 0], draws=1000, random_seed=0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 * 2**20, f"evaluate peaked at {peak / 2**20:.1f} MB"
    # well specified (noise 0.3, fitted): the central intervals cover about their level
    q = evaluate(full, Xr, yr, draws=1000, random_seed=0)
    assert abs(q.coverage[0.9] - 0.9) < 0.06 and abs(q.coverage[0.5] - 0.5) < 0.1


def test_outputs_that_overflow_raise_naming_the_rows():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 2))
    spec = Network([Dense(4, "relu"), Dense(3, "identity")], Categorical(3))  # relu passes inf on
    fit = bp.fit(bp.build_model(spec, X, rng.integers(0, 3, 30)), n=20, random_seed=0, progressbar=False)
    far = np.array([[0.0, 0.0], [-1e308, 1e308]])
    with np.errstate(all="ignore"), pytest.raises(DataError, match=r"overflowed to inf or NaN for 1 row\(s\) of X "
                                                                    r"\(rows \[1\]"):
        fit.predictor().predict_proba(far, draws=20)
    with np.errstate(all="ignore"), pytest.raises(DataError, match="overflowed"):
        fit.evaluate(far, [0, 1], draws=20)
    assert np.isfinite(fit.predictor().predict_proba(far[:1], draws=20)).all()


# ---------------------------------------------------------------- chunking
@pytest.mark.parametrize(("kind", "budget_mb"), [("batched", 0.001), ("sample_node", 0.03)])
def test_memory_bounded_chunks_give_the_same_answer(binary_fit, regression_fit, kind, budget_mb):
    X, _ = _binary_data()
    draws = 20
    full = binary_fit.predictor(kind=kind)
    tiny = Predictor(full.sampler, full.spec, memory_budget_mb=budget_mb)
    tiny.MIN_CHUNK_ROWS = 8  # these 60 rows must split into several chunks
    draw_chunk, row_chunk = tiny._chunks(X.shape[0], draws)
    assert row_chunk < X.shape[0] and (kind == "sample_node" or draw_chunk < draws)
    assert full._chunks(300, 300_000)[0] < 300_000  # huge draw counts are split for every kind
    np.testing.assert_allclose(tiny.sample(X, draws, random_seed=3), full.sample(X, draws, random_seed=3), rtol=1e-12)
    a, b = tiny.uncertainty(X, draws, random_seed=4), full.uncertainty(X, draws, random_seed=4)
    np.testing.assert_allclose(a.proba, b.proba, rtol=1e-10)
    np.testing.assert_allclose(a.mutual_information, b.mutual_information, rtol=1e-8, atol=1e-12)
    Xr = np.linspace(-2, 2, 30)[:, None]
    full_r = regression_fit.predictor(kind=kind)
    tiny_r = Predictor(full_r.sampler, full_r.spec, memory_budget_mb=budget_mb)
    tiny_r.MIN_CHUNK_ROWS = 8
    assert tiny_r._chunks(30, draws)[1] < 30
    a, b = tiny_r.uncertainty(Xr, draws, random_seed=4), full_r.uncertainty(Xr, draws, random_seed=4)
    for field in ("mean", "epistemic_var", "aleatoric_var"):
        np.testing.assert_allclose(getattr(a, field), getattr(b, field), rtol=1e-9, atol=1e-12)


def test_the_automatic_backend_is_chosen_for_the_whole_call_not_each_chunk(binary_fit, monkeypatch):
    """Chunks far below AUTO_JAX_WORK still run under JAX when the call as a whole reaches it."""
    pytest.importorskip("jax")
    from bnn_ppl.predictive import samplers

    X, _ = _binary_data()
    draws = 20
    full = binary_fit.predictor()
    reference = full.sample(X, draws, random_seed=3)
    n_params = binary_fit.built.spec.n_params()
    monkeypatch.setattr(samplers, "AUTO_JAX_WORK", draws * X.shape[0] * n_params)  # this call, exactly
    tiny = Predictor(samplers.BatchedSampler(binary_fit), full.spec, memory_budget_mb=0.001)
    tiny.MIN_CHUNK_ROWS = 8
    draw_chunk, row_chunk = tiny._chunks(X.shape[0], draws)
    assert draw_chunk * row_chunk * n_params < samplers.AUTO_JAX_WORK
    np.testing.assert_allclose(tiny.sample(X, draws, random_seed=3), reference, rtol=1e-6)
    assert tiny.sampler._jax_fn is not None
    small = Predictor(samplers.BatchedSampler(binary_fit), full.spec)
    small.sample(X, draws - 1, random_seed=3)  # one draw less: below the threshold, numpy
    assert small.sampler._jax_fn is None


# ---------------------------------------------------------------- errors
def test_predictor_errors(binary_fit):
    pred = binary_fit.predictor()
    with pytest.raises(DataError, match="X has 3 features but the network expects 2"):
        pred.sample(np.zeros((2, 3)))
    with pytest.raises(DataError, match="X contains NaN"):
        pred.predict(np.array([[0.0, np.nan]]))
    with pytest.raises(DataError, match="sample_noise is only defined for the Normal likelihood"):
        pred.sample_noise()


@pytest.mark.parametrize("draws", [0, -1, 2.5, True, np.bool_(True), "10", None])
@pytest.mark.parametrize("method", ["sample", "sample_noise", "uncertainty", "predict"])
def test_bad_draws_raise_parameter_error(binary_fit, regression_fit, method, draws):
    fit = regression_fit if method == "sample_noise" else binary_fit
    call = getattr(fit.predictor(), method)
    args = () if method == "sample_noise" else (np.zeros((2, fit.spec.input_shape[0])),)
    with pytest.raises(ParameterError) as info:
        call(*args, draws=draws)
    assert "'draws' parameter of Predictor" in str(info.value) and "positive integer" in str(info.value)
    assert f"Got {draws!r} instead" in str(info.value)


def test_numpy_integer_draws_are_accepted(binary_fit):
    assert binary_fit.predictor().sample(np.zeros((3, 2)), draws=np.int64(4), random_seed=0).shape == (4, 3)


def test_a_single_draw_warns_that_epistemic_uncertainty_is_not_estimated(binary_fit, regression_fit):
    for fit in (binary_fit, regression_fit):
        X = np.zeros((3, fit.spec.input_shape[0]))
        with pytest.warns(UserWarning, match=r"draws=1.*cannot estimate the epistemic uncertainty.*at least ~100 draws"):
            fit.predictor().uncertainty(X, draws=1, random_seed=0)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        binary_fit.predictor().uncertainty(np.zeros((3, 2)), draws=2, random_seed=0)


@pytest.mark.parametrize("likelihood", ["bernoulli", "normal", "hierarchical"])
def test_sliced_and_compiled_weights_give_the_same_draws(likelihood):
    """The batched sampler slices the flat draws when every parameter tensor is a free RV
    (exp for a log-transformed noise); otherwise it compiles the weights graph. Both agree."""
    from bnn_ppl.predictive.samplers import BatchedSampler

    rng = np.random.default_rng(4)
    X = rng.normal(size=(30, 2))
    prior = bp.Hierarchical() if likelihood == "hierarchical" else bp.Normal(1.0)
    lik, y = ((bp.NormalLikelihood(), X[:, 0] + 0.1 * rng.normal(size=30)) if likelihood == "normal"
              else (bp.Bernoulli(), (X[:, 0] > 0).astype(int)))
    result = bp.fit(bp.build_model(bp.Network([bp.Dense(3, prior=prior), bp.Dense(1, "identity")], lik), X, y), n=50,
                    method="advi", random_seed=0, progressbar=False)
    sliced, compiled = BatchedSampler(result), BatchedSampler(result, direct=False)
    assert (sliced.n_compiles, compiled.n_compiles) == ((1, 1) if likelihood == "hierarchical" else (0, 1))
    thetas = sliced.draw_params(9, np.random.default_rng(0))
    for a, b in zip(sliced.evaluate(thetas, X), compiled.evaluate(thetas, X), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12)

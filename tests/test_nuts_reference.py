"""The default variational fit against NUTS (the gold standard) on a tiny net: test log predictive density."""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytest
from sklearn.datasets import make_moons
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import bnn_ppl as bp
from bnn_ppl.predictive import evaluate, trace_predictor


@pytest.fixture(scope="module")
def tiny_moons():
    """Issue 11's moons case at half size: 100 training rows, 2-4-1 tanh, Normal(1) priors."""
    X, y = make_moons(n_samples=200, noise=0.2, random_state=0)
    X_tr, X_te, y_tr, y_te = train_test_split(StandardScaler().fit_transform(X), y, test_size=0.5, random_state=0)
    spec = bp.Network([bp.Dense(4), bp.Dense(1, "identity")], bp.Bernoulli(), prior=bp.Normal(1.0))
    return bp.build_model(spec, X_tr, y_tr, random_seed=0), X_te, y_te


@pytest.fixture(scope="module")
def nuts_lpd(tiny_moons):
    """NUTS on the same pm.Model (2 chains x 500 draws, seeded), scored by the same forward pass."""
    built, X_te, y_te = tiny_moons
    idata = pm.sample(draws=500, tune=500, chains=2, cores=1, model=built.model, random_seed=0,
                      progressbar=False, compute_convergence_checks=False)
    return evaluate(trace_predictor(built, idata), X_te, y_te, draws=4000).lpd


def test_default_fit_is_within_tolerance_of_nuts(tiny_moons, nuts_lpd):
    built, X_te, y_te = tiny_moons
    result = bp.fit(built, n=8000, random_seed=0, progressbar=False)
    lpd = result.evaluate(X_te, y_te, draws=4000).lpd
    assert abs(lpd - nuts_lpd) < 0.03, (result.method, lpd, nuts_lpd)


def test_trace_draws_round_trip_through_the_transforms():
    from bnn_ppl.arviz import posterior_group
    from bnn_ppl.predictive.trace import flat_draws

    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 2))
    spec = bp.Network([bp.Dense(3), bp.Dense(1, "identity")], bp.NormalLikelihood(), prior=bp.Hierarchical())
    result = bp.fit(bp.build_model(spec, X, X[:, 0] - X[:, 1]), n=300, method="advi", random_seed=0, progressbar=False)
    group = posterior_group(result, 20, np.random.default_rng(5))
    expected = result.posterior.draw(20, np.random.default_rng(5), per_member=True)
    np.testing.assert_allclose(flat_draws(result.built, group)[0], expected, rtol=1e-6, atol=1e-8)
    with pytest.raises(bp.DataError, match="no variable"):
        flat_draws(result.built, group.drop_vars("sigma"))
    # a trace predictor over the fit's own draws predicts what the fit predicts
    draws = trace_predictor(result.built, group).sample(X[:5], draws=400, random_seed=1).mean(0)
    direct = result.predictor().sample(X[:5], draws=4000, random_seed=1).mean(0)
    np.testing.assert_allclose(draws, direct, atol=0.15)


def test_known_noise_regression_has_in_between_uncertainty(tmp_path):
    """Issue 11's gap case: 40 points on [-2, -1] U [1, 2]; more predictive spread between the clusters."""
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.uniform(-2, -1, 20), rng.uniform(1, 2, 20)])
    y = np.sin(3 * x) + rng.normal(0, 0.1, x.size)
    spec = bp.Network([bp.Dense(50), bp.Dense(1, "identity")], bp.NormalLikelihood(sigma=0.1), prior=bp.Normal(1.0))
    path = tmp_path / "gap.toml"
    bp.dump_spec(spec, path)
    assert bp.load_spec(path) == spec and "sigma = 0.1" in path.read_text()
    result = bp.fit(bp.build_model(spec, x[:, None], y), n=10_000, random_seed=0, progressbar=False)
    predictor = result.predictor()
    np.testing.assert_array_equal(predictor.sample_noise(draws=3), [0.1, 0.1, 0.1])  # fixed, not fitted
    std = predictor.uncertainty(np.array([[-1.5], [0.0], [1.5]]), draws=2000, random_seed=0).std
    assert std[1] >= 3 * max(std[0], std[2]), std
    with pytest.raises(bp.SpecError, match="'sigma'"):
        bp.NormalLikelihood(sigma=-1.0)

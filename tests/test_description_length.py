"""Description length: LC against independent Monte Carlo, LC + LE against the final -ELBO."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from scipy.special import expit

import bnn_ppl as bp

SPEC = bp.Network([bp.Dense(3), bp.Dense(1, "identity")], bp.Bernoulli(), prior=bp.Normal(1.0))


@pytest.fixture(scope="module")
def data(moons):
    X_train, _, y_train, _ = moons
    return X_train[:200], y_train[:200]


@pytest.fixture(scope="module")
def normal_fit(data):
    return bp.fit(bp.build_model(SPEC, *data), n=3000, method="advi", random_seed=0, progressbar=False)


@pytest.fixture(scope="module")
def minibatch_fit(data):
    return bp.fit(bp.build_model(SPEC, *data, batch_size=50), n=1000, method="advi", random_seed=1, progressbar=False)


def _q(result):
    params = result.params()
    return params["mu"], np.logaddexp(0.0, params["rho"])


def _slices(result):
    return {name: (sl, shape) for name, sl, shape, _ in result.approx.groups[0].ordering.values()}


def _numpy_loglik(result, theta, X, y):
    """Bernoulli log-likelihood of a 2-3-1 tanh net written out in numpy (independent of PyMC)."""
    sl = _slices(result)
    w = {k: theta[s].reshape(shape) for k, (s, shape) in sl.items()}
    h = np.tanh(X @ w["dense_0_w"] + w["dense_0_b"])
    z = (h @ w["dense_1_w"] + w["dense_1_b"])[:, 0]
    return float(np.sum(y * np.log(expit(z)) + (1 - y) * np.log(expit(-z))))


def test_analytic_lc_matches_independent_monte_carlo(normal_fit):
    dl = normal_fit.description_length(draws=200, random_seed=0)
    assert dl.lc_se == 0.0
    assert set(dl.analytic) == {"dense_0_w", "dense_0_b", "dense_1_w", "dense_1_b"}
    mu, sd = _q(normal_fit)
    rng = np.random.default_rng(0)
    theta = mu + sd * rng.standard_normal((20000, mu.size))
    kl = stats.norm(mu, sd).logpdf(theta).sum(1) - stats.norm(0, 1).logpdf(theta).sum(1)
    assert dl.lc == pytest.approx(kl.mean(), abs=4 * kl.std() / np.sqrt(kl.size))
    assert sum(dl.lc_by_variable.values()) == pytest.approx(dl.lc)


def test_lc_plus_le_matches_final_negative_elbo(normal_fit):
    dl = normal_fit.description_length(draws=2000, random_seed=1)
    assert dl.total == pytest.approx(dl.lc + dl.le)
    assert dl.total == pytest.approx(normal_fit.final_loss, rel=0.02)
    assert dl.total_bits == pytest.approx(dl.total / math.log(2))
    d = dl.to_dict()
    assert d["le_bits"] == pytest.approx(dl.le / math.log(2))
    assert d["total_se_nats"] == dl.total_se > 0


def test_le_of_minibatch_model_uses_the_whole_training_set(minibatch_fit, data):
    dl = minibatch_fit.description_length(draws=400, random_seed=2)
    mu, sd = _q(minibatch_fit)
    rng = np.random.default_rng(3)
    le = [-_numpy_loglik(minibatch_fit, mu + sd * rng.standard_normal(mu.size), *data) for _ in range(400)]
    assert dl.le == pytest.approx(np.mean(le), abs=4 * math.hypot(dl.le_se, np.std(le) / 20))


def test_monte_carlo_lc_for_hierarchical_prior_matches_scipy(data):
    spec = bp.Network([bp.Dense(3), bp.Dense(1, "identity")], bp.Bernoulli(), prior=bp.Hierarchical(parametrization="centered", fan_in=True))
    result = bp.fit(bp.build_model(spec, *data), n=500, method="advi", random_seed=0, progressbar=False)
    dl = result.description_length(draws=3000, random_seed=4)
    assert dl.lc_se > 0 and set(dl.analytic) == {"dense_0_b", "dense_1_b"}
    mu, sd = _q(result)
    sl = _slices(result)
    rng = np.random.default_rng(5)
    theta = mu + sd * rng.standard_normal((20000, mu.size))
    log_prior = np.zeros(theta.shape[0])
    for layer, fan_in in (("dense_0", 2), ("dense_1", 3)):
        log_tau = theta[:, sl[f"{layer}_w_scale_log__"][0]][:, 0]
        tau = np.exp(log_tau)
        w = theta[:, sl[f"{layer}_w"][0]]
        log_prior += stats.halfnorm.logpdf(tau) + log_tau  # Jacobian of tau = exp(log_tau)
        log_prior += stats.norm.logpdf(w, 0, (tau / np.sqrt(fan_in))[:, None]).sum(1)
        log_prior += stats.norm.logpdf(theta[:, sl[f"{layer}_b"][0]]).sum(1)
    kl = stats.norm(mu, sd).logpdf(theta).sum(1) - log_prior
    assert dl.lc == pytest.approx(kl.mean(), abs=4 * math.hypot(dl.lc_se, kl.std() / np.sqrt(kl.size)))


def test_bad_draws_raise():
    with pytest.raises(bp.ParameterError, match="'draws' parameter of description_length must be an integer >= 2. Got 1"):
        from bnn_ppl.inference.description_length import description_length

        description_length(None, draws=1)

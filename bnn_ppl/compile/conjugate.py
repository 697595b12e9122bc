"""Conjugate layer priors with the shared mean/variance integrated out analytically.

Under ``w_i ~ Normal(m, s2)`` with a Normal-Inverse-Gamma prior on ``(m, s2)`` the weights of a
layer are exchangeable and jointly multivariate Student-t. Its density is written as the
product of one-step-ahead predictives, ``p(w) = prod_i p(w_i | w_<i)``, each a univariate
Student-t whose parameters are the conjugate posterior after ``w_<i`` (Murphy 2007, sec. 3-4).
The sum over elements is the exact joint log-density; a single element's term depends on the
(flattened, C-order) elements before it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pymc as pm
import pytensor.tensor as pt

__all__ = ["conjugate_weights", "conjugate_known_mean_weights", "nig_logp", "known_mean_logp"]


def _student_t_logp(x: Any, nu: Any, loc: Any, scale2: Any) -> pt.TensorVariable:
    z2 = (x - loc) ** 2 / scale2
    return (
        pt.gammaln((nu + 1.0) / 2.0)
        - pt.gammaln(nu / 2.0)
        - 0.5 * pt.log(nu * np.pi * scale2)
        - (nu + 1.0) / 2.0 * pt.log1p(z2 / nu)
    )


def _before(x: pt.TensorVariable) -> pt.TensorVariable:
    """Exclusive cumulative sum: element i holds ``sum(x[:i])``."""
    return pt.cumsum(x) - x


def nig_logp(value: Any, mu0: Any, kappa0: Any, alpha0: Any, beta0: Any) -> pt.TensorVariable:
    """Element-wise terms of the Normal-Inverse-Gamma marginal log-density (they sum to the joint)."""
    x = pt.as_tensor_variable(value)
    flat = x.flatten()
    k = pt.arange(flat.shape[0]).astype(flat.dtype)
    s1, s2 = _before(flat), _before(flat**2)
    kappa = kappa0 + k
    mu = (kappa0 * mu0 + s1) / kappa
    alpha = alpha0 + k / 2.0
    beta = beta0 + 0.5 * pt.maximum(s2 + kappa0 * mu0**2 - kappa * mu**2, 0.0)
    scale2 = beta * (kappa + 1.0) / (alpha * kappa)
    return _student_t_logp(flat, 2.0 * alpha, mu, scale2).reshape(x.shape)


def known_mean_logp(value: Any, mean: Any, alpha0: Any, beta0: Any) -> pt.TensorVariable:
    """Element-wise terms of the known-mean, Inverse-Gamma-variance marginal log-density."""
    x = pt.as_tensor_variable(value)
    flat = x.flatten()
    k = pt.arange(flat.shape[0]).astype(flat.dtype)
    alpha = alpha0 + k / 2.0
    beta = beta0 + 0.5 * _before((flat - mean) ** 2)
    return _student_t_logp(flat, 2.0 * alpha, mean, beta / alpha).reshape(x.shape)


def _nig_random(mu0, kappa0, alpha0, beta0, rng=None, size=None):
    s2 = 1.0 / rng.gamma(alpha0, 1.0 / beta0)
    m = rng.normal(mu0, np.sqrt(s2 / kappa0))
    return rng.normal(m, np.sqrt(s2), size=size)


def _known_mean_random(mean, alpha0, beta0, rng=None, size=None):
    s2 = 1.0 / rng.gamma(alpha0, 1.0 / beta0)
    return rng.normal(mean, np.sqrt(s2), size=size)


def conjugate_weights(
    name: str, mu0: float, kappa0: float, alpha0: float, beta0: float, dims: tuple[str, ...]
) -> pt.TensorVariable:
    """A weight tensor whose elements share an unknown mean and variance (NIG, marginalised)."""
    return pm.CustomDist(name, mu0, kappa0, alpha0, beta0, logp=nig_logp, random=_nig_random, dims=dims)


def conjugate_known_mean_weights(
    name: str, mean: float, alpha0: float, beta0: float, dims: tuple[str, ...]
) -> pt.TensorVariable:
    """A weight tensor whose elements share a known mean and an unknown variance (marginalised)."""
    return pm.CustomDist(name, mean, alpha0, beta0, logp=known_mean_logp, random=_known_mean_random, dims=dims)

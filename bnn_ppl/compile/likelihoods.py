"""Numerically stable PyMC likelihoods on the network's output (logits or mean)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from pytensor.tensor.special import log_softmax

from bnn_ppl.array_ops import pytensor_ops

from bnn_ppl.spec import likelihoods as L

__all__ = ["build_likelihood", "output_parameter", "OBSERVED_NAME", "NOISE_NAME"]

OBSERVED_NAME = "y_obs"
NOISE_NAME = "sigma"


def _categorical_logp(value: pt.TensorVariable, logits: pt.TensorVariable) -> pt.TensorVariable:
    # log-softmax + take_along_axis: finite gradients however far the logits spread.
    logp = log_softmax(logits, axis=-1)
    idx = pt.cast(value, "int64")[..., None]
    return pt.take_along_axis(logp, idx, axis=-1)[..., 0]


def _categorical_dist(logits: pt.TensorVariable, size: Any = None) -> pt.TensorVariable:
    return pm.Categorical.dist(logit_p=logits, size=size)


def build_likelihood(
    likelihood: L.Likelihood,
    output: pt.TensorVariable,
    observed: pt.TensorVariable,
    total_size: int | None,
    dims: str | None,
) -> pt.TensorVariable:
    """Add the observed RV ``y_obs`` for ``likelihood`` given the last layer's ``output``."""
    return _BUILDERS[type(likelihood)](likelihood, output, observed, total_size, dims)


def _bernoulli(lik, output, observed, total_size, dims):
    return pm.Bernoulli(OBSERVED_NAME, logit_p=output[:, 0], observed=observed, total_size=total_size, dims=dims)


def _categorical(lik, output, observed, total_size, dims):
    return pm.CustomDist(
        OBSERVED_NAME,
        output,
        logp=_categorical_logp,
        dist=_categorical_dist,
        observed=observed,
        total_size=total_size,
        dims=dims,
        ndim_supp=0,
        ndims_params=[1],
        dtype="int64",
    )


def _normal(lik, output, observed, total_size, dims):
    if lik.sigma is not None:  # known noise: a constant, recorded under the same name
        sigma = pm.Deterministic(NOISE_NAME, pt.as_tensor_variable(np.asarray(lik.sigma, dtype=output.dtype)))
    else:
        sigma = pm.HalfNormal(NOISE_NAME, sigma=lik.sigma_prior)
    return pm.Normal(OBSERVED_NAME, mu=output[:, 0], sigma=sigma, observed=observed, total_size=total_size, dims=dims)


_BUILDERS: dict[type, Callable] = {L.Bernoulli: _bernoulli, L.Categorical: _categorical, L.Normal: _normal}


def output_parameter(likelihood: L.Likelihood, output: pt.TensorVariable) -> pt.TensorVariable:
    """The likelihood's parameter from the last layer: p(y=1), class probabilities or the mean."""
    return likelihood.link(pytensor_ops(), output)

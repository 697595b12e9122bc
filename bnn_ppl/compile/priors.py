"""Turn each spec prior into PyMC random variables for one weight tensor."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from bnn_ppl.spec import priors as P

__all__ = ["WeightNodes", "build_weights", "PRIOR_BUILDERS"]


@dataclass(frozen=True)
class WeightNodes:
    """What a prior builder returns.

    Attributes
    ----------
    value : TensorVariable
        The weight tensor used by the forward pass (an RV or a Deterministic).
    init_scales : dict[str, float]
        Free RV name -> standard deviation of the random initial mean used to break the
        symmetry between hidden units (RVs not listed start at their PyMC initial point).
    """

    value: pt.TensorVariable
    init_scales: dict[str, float]


Builder = Callable[..., WeightNodes]
#: Prior class -> builder(prior, name, dims, fan_in) -> WeightNodes.
PRIOR_BUILDERS: dict[type[P.Prior], Builder] = {}


def _builder(cls: type[P.Prior]) -> Callable[[Builder], Builder]:
    def decorator(fn: Builder) -> Builder:
        PRIOR_BUILDERS[cls] = fn
        return fn

    return decorator


def build_weights(prior: P.Prior, name: str, dims: tuple[str, ...], fan_in: int) -> WeightNodes:
    """Create the PyMC nodes of one weight (or bias) tensor under ``prior`` in the model context.

    Parameters
    ----------
    prior : Prior
        The spec prior.
    name : str
        Variable name, e.g. ``"dense_0_w"``.
    dims : tuple of str
        Named dims registered in the model's coords.
    fan_in : int
        Number of inputs of the layer (used by fan-in scaled priors and initialisation).
    """
    try:
        builder = PRIOR_BUILDERS[type(prior)]
    except KeyError:
        raise NotImplementedError(f"No PyMC builder for prior {type(prior).__name__}") from None
    return builder(prior, name, dims, fan_in)


def _init_scale(fan_in: int) -> float:
    return float(1.0 / np.sqrt(fan_in))


@_builder(P.Normal)
def _normal(prior: P.Normal, name: str, dims: tuple[str, ...], fan_in: int) -> WeightNodes:
    w = pm.Normal(name, mu=prior.mu, sigma=prior.sigma, dims=dims)
    return WeightNodes(w, {name: min(prior.sigma, 1.0)})


@_builder(P.FanInNormal)
def _fan_in_normal(prior: P.FanInNormal, name: str, dims: tuple[str, ...], fan_in: int) -> WeightNodes:
    sigma = prior.scale / np.sqrt(fan_in)
    w = pm.Normal(name, mu=0.0, sigma=sigma, dims=dims)
    return WeightNodes(w, {name: float(sigma)})


_HYPER = {
    "half_normal": lambda n, s: pm.HalfNormal(n, sigma=s),
    "half_cauchy": lambda n, s: pm.HalfCauchy(n, beta=s),
    "exponential": lambda n, s: pm.Exponential(n, lam=1.0 / s),
}


@_builder(P.Hierarchical)
def _hierarchical(prior: P.Hierarchical, name: str, dims: tuple[str, ...], fan_in: int) -> WeightNodes:
    tau = _HYPER[prior.hyperprior](f"{name}_scale", prior.scale)
    raw = pm.Normal(f"{name}_raw", 0.0, 1.0, dims=dims)
    factor = 1.0 / np.sqrt(fan_in) if prior.fan_in else 1.0
    w = pm.Deterministic(name, tau * factor * raw, dims=dims)
    return WeightNodes(w, {f"{name}_raw": 1.0})

"""Turn each spec prior into PyMC random variables for one weight tensor.

Where each family's hyperparameters live:

- ``Normal``, ``FanInNormal``, ``Laplace``, ``StudentT``, ``ScaleMixture``: fixed densities, no
  hyperparameter in the graph.
- ``Conjugate``, ``ConjugateKnownMean``: the shared mean/variance are integrated out
  analytically (see :mod:`bnn_ppl.compile.conjugate`); the weights are one exchangeable
  multivariate Student-t and the graph holds only the weights.
- ``Hierarchical``, ``Horseshoe``: scales stay in the graph as random variables
  (log-transformed for ADVI).

What made hierarchical priors "collapse" (moons 2-5-5-1, Adam 0.01, 30k steps): ADVI has two
basins there, a good one (loss ~115-125, 96-97% accuracy) and a near-linear one (loss ~185-197,
85%). The learned scale follows the weights into whichever basin the start leads to; starting
``tau`` at 1 (weights' prior std 0.7/0.45) sent seed 1 to the linear basin. ``tau`` now starts
where the prior's std equals the initial spread of the weights (``initval``), with weights
initialised at ``min(1, 2/sqrt(fan_in))``: non-centred then reached 0.962-0.966 on 5/5 seeds,
centred 4/5 (``bench/prior_accuracy.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from bnn_ppl.compile.conjugate import conjugate_weights, conjugate_known_mean_weights
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
    init_locs : dict[str, float]
        Free RV name -> centre of those initial means (0 when not listed; a Normal prior's mu).
    """

    value: pt.TensorVariable
    init_scales: dict[str, float]
    init_locs: dict[str, float] = field(default_factory=dict)


Builder = Callable[..., WeightNodes]
#: Prior class -> builder(prior, name, dims, fan_in, in_axis, scale) -> WeightNodes. ``scale``
#: (a float or a scalar tensor) multiplies the prior's width as :meth:`Prior.scaled` does
#: (each field of ``prior.spread`` times ``scale ** power``); initial values ignore it.
PRIOR_BUILDERS: dict[type[P.Prior], Builder] = {}


def _builder(cls: type[P.Prior]) -> Callable[[Builder], Builder]:
    def decorator(fn: Builder) -> Builder:
        PRIOR_BUILDERS[cls] = fn
        return fn

    return decorator


def build_weights(
    prior: P.Prior, name: str, dims: tuple[str, ...], fan_in: int, in_axis: int = 0, scale: Any = 1.0
) -> WeightNodes:
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
    in_axis : int
        The axis of the tensor that indexes the layer's inputs (the horseshoe's local scales
        live on it: axis 0 of a dense weight, axis 1 of a convolution kernel).
    scale : float or TensorVariable
        Multiplies the prior's width (``build_model(prior_scale=...)`` passes its ``pm.Data``).
    """
    try:
        builder = PRIOR_BUILDERS[type(prior)]
    except KeyError:
        raise NotImplementedError(f"No PyMC builder for prior {type(prior).__name__}") from None
    return builder(prior, name, dims, fan_in, in_axis=in_axis, scale=scale)


#: Initial weight spread in units of ``1/sqrt(fan_in)`` (capped at 1): see ``_init_scale``.
INIT_GAIN = 2.0


def _init_scale(fan_in: int, prior_std: float = np.inf) -> float:
    """Std of the random initial means: ``min(prior_std, 1, INIT_GAIN / sqrt(fan_in))``.

    Starting the means too close to zero lands ADVI in the near-linear optimum (moons: loss
    ~190, 85% accuracy); ``2/sqrt(fan_in)`` keeps wide layers tame (0.07 for 784 inputs).
    """
    return float(min(prior_std, 1.0, INIT_GAIN / np.sqrt(fan_in)))


@_builder(P.Normal)
def _normal(prior: P.Normal, name: str, dims: tuple[str, ...], fan_in: int, in_axis: int = 0, scale: Any = 1.0) -> WeightNodes:
    w = pm.Normal(name, mu=prior.mu, sigma=prior.sigma * scale, dims=dims)
    return WeightNodes(w, {name: min(prior.sigma, 1.0)}, {name: prior.mu} if prior.mu else {})


@_builder(P.FanInNormal)
def _fan_in_normal(prior: P.FanInNormal, name: str, dims: tuple[str, ...], fan_in: int, in_axis: int = 0, scale: Any = 1.0) -> WeightNodes:
    sigma = prior.scale / np.sqrt(fan_in)
    w = pm.Normal(name, mu=0.0, sigma=sigma * scale, dims=dims)
    return WeightNodes(w, {name: float(sigma)})


_HYPER = {
    "half_normal": lambda n, s, init: pm.HalfNormal(n, sigma=s, initval=init),
    "half_cauchy": lambda n, s, init: pm.HalfCauchy(n, beta=s, initval=init),
    "exponential": lambda n, s, init: pm.Exponential(n, lam=1.0 / s, initval=init),
}


@_builder(P.Hierarchical)
def _hierarchical(prior: P.Hierarchical, name: str, dims: tuple[str, ...], fan_in: int, in_axis: int = 0, scale: Any = 1.0) -> WeightNodes:
    factor = 1.0 / np.sqrt(fan_in) if prior.fan_in else 1.0
    init = _init_scale(fan_in)
    # Start tau where the prior's std equals the initial spread of the weights.
    tau = _HYPER[prior.hyperprior](f"{name}_scale", prior.scale * scale, init / factor)
    if prior.parametrization == "centered":
        w = pm.Normal(name, 0.0, tau * factor, dims=dims)
        return WeightNodes(w, {name: init})
    raw = pm.Normal(f"{name}_raw", 0.0, 1.0, dims=dims)
    w = pm.Deterministic(name, tau * factor * raw, dims=dims)
    return WeightNodes(w, {f"{name}_raw": 1.0})


@_builder(P.Conjugate)
def _conjugate(prior: P.Conjugate, name: str, dims: tuple[str, ...], fan_in: int, in_axis: int = 0, scale: Any = 1.0) -> WeightNodes:
    w = conjugate_weights(name, prior.mu0, prior.kappa0, prior.alpha0, prior.beta0 * scale**2, dims)
    return WeightNodes(w, {name: _init_scale(fan_in)})


@_builder(P.ConjugateKnownMean)
def _conjugate_known_mean(
    prior: P.ConjugateKnownMean, name: str, dims: tuple[str, ...], fan_in: int, in_axis: int = 0, scale: Any = 1.0
) -> WeightNodes:
    w = conjugate_known_mean_weights(name, prior.mean, prior.alpha0, prior.beta0 * scale**2, dims)
    return WeightNodes(w, {name: _init_scale(fan_in)})


@_builder(P.ScaleMixture)
def _scale_mixture(prior: P.ScaleMixture, name: str, dims: tuple[str, ...], fan_in: int, in_axis: int = 0, scale: Any = 1.0) -> WeightNodes:
    w = pm.NormalMixture(
        name, w=[prior.pi, 1.0 - prior.pi], mu=[0.0, 0.0], sigma=pt.stack([prior.sigma1 * scale, prior.sigma2 * scale]), dims=dims
    )
    # Start at the broad component's spread, like Normal(sigma): the mixture's overall std
    # (0.71 for the defaults) sent 3 of 5 moons seeds to the near-linear basin, 1.0 none.
    return WeightNodes(w, {name: min(max(prior.sigma1, prior.sigma2), 1.0)})


@_builder(P.Laplace)
def _laplace(prior: P.Laplace, name: str, dims: tuple[str, ...], fan_in: int, in_axis: int = 0, scale: Any = 1.0) -> WeightNodes:
    w = pm.Laplace(name, mu=0.0, b=prior.b * scale, dims=dims)
    return WeightNodes(w, {name: min(prior.b * np.sqrt(2.0), 1.0)})


@_builder(P.StudentT)
def _student_t(prior: P.StudentT, name: str, dims: tuple[str, ...], fan_in: int, in_axis: int = 0, scale: Any = 1.0) -> WeightNodes:
    w = pm.StudentT(name, nu=prior.nu, mu=0.0, sigma=prior.sigma * scale, dims=dims)
    return WeightNodes(w, {name: min(prior.sigma, 1.0)})


@_builder(P.Horseshoe)
def _horseshoe(prior: P.Horseshoe, name: str, dims: tuple[str, ...], fan_in: int, in_axis: int = 0, scale: Any = 1.0) -> WeightNodes:
    # As for Hierarchical: start tau where the weights' prior std (slab aside, local scales at
    # 1) equals their initial spread; tau at its PyMC default (1) started the moons weights at
    # 0.67/0.42 and sent 3 of 5 seeds to the near-linear basin.
    factor = 1.0 / np.sqrt(fan_in)
    tau = pm.HalfCauchy(f"{name}_scale", beta=prior.global_scale * scale, initval=_init_scale(fan_in) / factor)
    local = pm.HalfCauchy(f"{name}_local", beta=1.0, dims=(dims[in_axis],))
    c2 = pm.InverseGamma(
        f"{name}_slab", alpha=prior.slab_df / 2.0, beta=prior.slab_df * (prior.slab_scale * scale) ** 2 / 2.0
    )
    local_tilde = pt.sqrt(c2 * local**2 / (c2 + tau**2 * local**2))
    # one local scale per input (row of a dense weight, input channel of a kernel)
    local_tilde = local_tilde[(None,) * in_axis + (slice(None),) + (None,) * (len(dims) - in_axis - 1)]
    raw = pm.Normal(f"{name}_raw", 0.0, 1.0, dims=dims)
    w = pm.Deterministic(name, raw * tau * local_tilde * factor, dims=dims)
    return WeightNodes(w, {f"{name}_raw": 1.0})

"""How each step estimates the negative ELBO and its gradient: :class:`ELBO`.

Every engine computes ``-ELBO = -E_q[log p(theta, D)] - H[q]`` from ``mc_draws``
reparameterised draws ``theta`` of the family. Three choices change the estimator, not its
expectation:

- ``kl``: ``"mc"`` evaluates every prior term at the draws (PyMC's ADVI objective);
  ``"closed_form"`` takes the prior terms of every free variable with a fixed Normal prior
  (weights under ``Normal``/``FanInNormal``, the standard-normal raws of non-centred priors)
  in closed form, ``E_q[log N(theta; m, s)] = -log s - log(2 pi)/2 - ((mu - m)^2 + var) / (2 s^2)``
  with the family's mean and marginal variance; the other terms stay sampled.
- ``gradient``: ``"reparameterization"`` uses the family's analytic entropy;
  ``"path"`` ("sticking the landing", Roeder et al. 2017) replaces it by ``log q(theta)`` with
  the family's parameters held fixed, dropping the score term whose expectation is zero, so the
  gradient's variance vanishes as q approaches the posterior. The reported loss is then a
  Monte Carlo estimate of the same -ELBO.
- ``local_reparameterization``: ``True`` (with ``kl="closed_form"``, mean-field, dense layers)
  draws each row's pre-activations in place of the weights
  (:mod:`bnn_ppl.inference.engines.local`): lower variance, more draws per step.

One choice changes the objective: ``kl_weight`` (beta) multiplies every term but the network's
likelihood, ``-E_q[log p(D | theta)] + beta KL(q || prior)``. ``beta = 1`` is the ELBO; ``beta < 1``
is a "cold" (tempered) posterior, the same as counting every training row ``1 / beta`` times:
narrower, more confident members, which an ensemble's equal-weight mixture needs to be
calibrated. ``python -m bench.families --studies calibration``, digits 64-32-10 with
``Normal(10)`` priors, 4 members, median of 5 seeds (accuracy / NLL / ECE): beta = 1 97.3% /
0.121 / 0.049, beta = 1/3 97.8% / 0.095 / 0.034, beta = 1/10 98.0% / 0.080 / 0.023 (every seed
ECE <= 0.030); the default (``Normal(1)``, one mean-field fit) 96.9% / 0.194 / 0.096 at a fifth of
the time. The default stays 1: a tempered posterior is no longer Bayes' posterior, and its
weight is a setting to choose on held-out data. The reported losses are then that objective.

Engines hand the estimator PyMC's log density without the terms of free variables with a fixed
Normal prior (``FlatLogp.rest_other`` plus the likelihood) and those terms' prior means and
sigmas as flat vectors (``FlatLogp.gaussian_*``), which it evaluates in one elementwise pass
over the parameter vector: the same value as PyMC's per-variable graph, which had cost a third
of the moons step (21.7k vs 33.5k steps/s, float32, one thread).

The default stays PyMC's objective, from ``bench/estimators.py`` (20,000 steps, 3 seeds): the
closed-form KL left 99% of the gradient variance (moons and digits: the likelihood's Monte Carlo
and minibatch noise dominate) at the same speed and -ELBO; the path gradient left 84% (moons)
and 96% (digits) for the same -ELBO (117.4 vs 117.2; 950.5 vs 953.0); ``mc_draws=4`` left 27-29%
at 4.5x the cost per step. Local reparameterisation (Session 11, same study): 0.049x (moons) and
0.262x (digits) the gradient variance at 0.16x / 0.63x the closed-form KL's steps/s; digits reached
the default's final -ELBO 1.8x sooner (2.25 vs 4.09 s) and ended lower (941.7 vs 957.4).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass
from typing import Any

from bnn_ppl.errors import ParameterError
from bnn_ppl.inference.families._base import HALF_LOG_2PI

__all__ = ["ELBO", "KL_CHOICES", "GRADIENTS", "normal_logp", "resolve_elbo"]

KL_CHOICES = ("mc", "closed_form")
GRADIENTS = ("reparameterization", "path")


@dataclass(frozen=True)
class ELBO:
    """The -ELBO estimator of every step (see the module docstring).

    Parameters
    ----------
    kl : {"mc", "closed_form"}
        Sample every prior term (``"mc"``), or take fixed Normal priors in closed form.
    gradient : {"reparameterization", "path"}
        Analytic entropy, or the path-derivative ("sticking the landing") gradient.
    kl_weight : float
        beta > 0 on the KL term (every term but the likelihood); 1 is the ELBO, below 1 a
        tempered ("cold") posterior.
    local_reparameterization : bool
        Sample each dense layer's pre-activations, one independent draw per row, in place of
        its weights (Kingma, Salimans and Welling 2015): the same expected -ELBO, lower gradient
        variance on minibatches. Mean-field (``method="advi"``), ``kl="closed_form"``, the JAX
        engine, and a network whose layers with parameters are all ``Dense`` with ``Normal`` or
        ``FanInNormal`` priors (:mod:`bnn_ppl.inference.engines.local`).

    Examples
    --------
    >>> ELBO(kl="closed_form")
    ELBO(kl='closed_form', gradient='reparameterization', kl_weight=1.0, local_reparameterization=False)
    >>> ELBO(kl_weight=0.25).label()
    'kl_weight=0.25'
    >>> ELBO(kl_weight=0)
    Traceback (most recent call last):
    ...
    bnn_ppl.errors.ParameterError: The 'kl_weight' of ELBO must be a finite number > 0 (1 is the ELBO). Got 0 instead.
    >>> ELBO(kl="exact")
    Traceback (most recent call last):
    ...
    bnn_ppl.errors.ParameterError: The 'kl' of ELBO must be one of ['mc', 'closed_form']. Got 'exact' instead.
    """

    kl: str = "mc"
    gradient: str = "reparameterization"
    kl_weight: float = 1.0
    local_reparameterization: bool = False

    def __post_init__(self) -> None:
        for field, choices in (("kl", KL_CHOICES), ("gradient", GRADIENTS)):
            value = getattr(self, field)
            if value not in choices:
                raise ParameterError(f"The {field!r} of ELBO must be one of {list(choices)}. Got {value!r} instead.")
        beta = self.kl_weight
        if isinstance(beta, bool) or not isinstance(beta, numbers.Real) or not math.isfinite(beta) or beta <= 0:
            raise ParameterError(f"The 'kl_weight' of ELBO must be a finite number > 0 (1 is the ELBO). "
                                 f"Got {beta!r} instead.")
        object.__setattr__(self, "kl_weight", float(beta))
        if not isinstance(self.local_reparameterization, bool):
            raise ParameterError("The 'local_reparameterization' of ELBO must be True or False. "
                                 f"Got {self.local_reparameterization!r} instead.")
        if self.local_reparameterization and (self.kl != "closed_form" or self.gradient != "reparameterization"):
            raise ParameterError(
                "ELBO(local_reparameterization=True) never samples the weights, so their prior terms are taken "
                "in closed form and the entropy analytically: use ELBO(kl='closed_form', "
                f"gradient='reparameterization', local_reparameterization=True). Got kl={self.kl!r}, "
                f"gradient={self.gradient!r}."
            )

    @property
    def is_default(self) -> bool:
        return self == ELBO()

    def options(self) -> dict[str, Any]:
        return asdict(self)

    def label(self) -> str:
        """Short text for display: the settings that differ from the default."""
        default = ELBO()
        changed = [f"{k}={v}" for k, v in self.options().items() if getattr(default, k) != v]
        return ", ".join(changed)

    def neg_elbo(self, xp: Any, family: Any, q: dict[str, Any], theta: Any, expected_loglik: Any,
                 expected_rest: Any, gaussian: tuple[Any, Any, Any]) -> Any:
        """The -ELBO estimate from draws ``theta`` (mc_draws, D) of ``family`` with parameters ``q``.

        ``expected_loglik`` and ``expected_rest``: the means over the draws of the likelihood's
        log density and of every other term but the fixed Normal prior terms (``FlatLogp.rows``
        summed, ``FlatLogp.rest_other``); ``gaussian``: ``(mask, mu, sigma)`` of those terms
        (:class:`~bnn_ppl.inference.engines.objective.FlatLogp`).
        """
        mask, mu, sigma = gaussian
        if self.kl == "closed_form":
            var = family.marginal_var(xp, q)
            terms = -xp.log(sigma) - HALF_LOG_2PI - ((q["mu"] - mu) ** 2 + var) / (2.0 * sigma * sigma)
            prior = expected_rest + xp.sum(xp.where(mask, terms, 0.0))
        else:
            prior = expected_rest + xp.mean(normal_logp(xp, theta, mask, mu, sigma))
        if self.gradient == "path":
            fixed = {name: xp.stop_gradient(v) for name, v in q.items()}
            kl = xp.mean(family.log_density(xp, fixed, theta)) - prior
        else:
            kl = -family.entropy(xp, q) - prior
        return -expected_loglik + (kl if self.kl_weight == 1.0 else self.kl_weight * kl)


def normal_logp(xp: Any, theta: Any, mask: Any, mu: Any, sigma: Any) -> Any:
    """``sum_i log N(theta_i; mu_i, sigma_i)`` over the coordinates where ``mask`` is True, per draw."""
    z = (theta - mu) / sigma
    terms = -0.5 * z * z - xp.log(sigma) - HALF_LOG_2PI
    return xp.sum(xp.where(mask, terms, 0.0), axis=-1)


def resolve_elbo(value: Any) -> ELBO:
    """``None`` -> the default :class:`ELBO`; an :class:`ELBO` as is; anything else refused."""
    if value is None:
        return ELBO()
    if isinstance(value, ELBO):
        return value
    raise ParameterError(f"The 'elbo' parameter of fit must be a bp.ELBO(kl=..., gradient=...) or None. "
                         f"Got {value!r} instead.")

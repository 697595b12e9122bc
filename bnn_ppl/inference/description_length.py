"""The variational objective read as a description length (Hinton & van Camp; PyVarInf).

``-ELBO = LC + LE``: ``LC = KL(q || prior)`` is the model's complexity (the bits-back code
length of the weights) and ``LE = E_q[-log p(D | theta)]`` the error (the code length of the
data given the weights). Both are in nats here and in bits on request.

How each part is computed (q is a Gaussian family over the unconstrained parameters):

- the entropy of q is analytic (every family defines it: mean-field, full-rank, low-rank);
- ``E_q[-log prior]`` is analytic for every free variable with a ``Normal`` prior whose
  parameters are constants and which has no transform (``Normal``, ``FanInNormal`` weights),
  using q's marginal means and variances; every other prior term (hierarchical scales,
  conjugate, mixture, Laplace, Student-t, horseshoe, log-transformed variables with their
  Jacobians) is a Monte Carlo average over draws from q;
- ``LE`` is a Monte Carlo average of the log-likelihood of the *whole* training set: on a
  minibatch model the minibatch is replaced by the full data (so no ``total_size`` rescaling
  and no minibatch noise enters).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytensor
from pytensor.graph.basic import Constant
from pytensor.graph.traversal import graph_inputs
from pytensor.tensor.random.basic import NormalRV

from bnn_ppl.array_ops import numpy_ops
from bnn_ppl.errors import ParameterError
from bnn_ppl.seeds import check_seed

__all__ = ["DescriptionLength", "description_length"]

_LN2 = math.log(2.0)


@dataclass(frozen=True)
class DescriptionLength:
    """``LC``, ``LE`` and their sum for a fitted approximation.

    Attributes
    ----------
    lc, le, total : float
        Complexity ``KL(q || prior)``, error ``E_q[-log p(D | theta)]`` and their sum (nats).
    lc_se, le_se, total_se : float
        Monte Carlo standard errors (0.0 where the term is analytic).
    draws : int
        Monte Carlo draws from q.
    analytic : tuple of str
        Free variables whose prior term was computed in closed form.
    lc_by_variable : dict
        Free variable -> its share of ``LC`` (mean-field only; empty for correlated q).
    """

    lc: float
    le: float
    total: float
    lc_se: float
    le_se: float
    total_se: float
    draws: int
    analytic: tuple[str, ...] = ()
    lc_by_variable: dict[str, float] = field(default_factory=dict)

    @property
    def lc_bits(self) -> float:
        return self.lc / _LN2

    @property
    def le_bits(self) -> float:
        return self.le / _LN2

    @property
    def total_bits(self) -> float:
        return self.total / _LN2

    def to_dict(self) -> dict[str, float]:
        """Every figure in nats and in bits, with standard errors."""
        out: dict[str, float] = {"draws": self.draws}
        for name in ("lc", "le", "total"):
            nats, se = getattr(self, name), getattr(self, f"{name}_se")
            out.update({f"{name}_nats": nats, f"{name}_se_nats": se, f"{name}_bits": nats / _LN2,
                        f"{name}_se_bits": se / _LN2})
        return out


def _constant_normal(model: Any, rv: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """(mu, sigma) broadcast to the RV's shape when its prior is a constant untransformed Normal."""
    if not isinstance(rv.owner.op, NormalRV) or model.rvs_to_transforms.get(rv) is not None:
        return None
    mu, sigma = rv.owner.op.dist_params(rv.owner)
    if not all(isinstance(node, Constant) for node in graph_inputs([mu, sigma])):
        return None
    value = model.initial_point()[model.rvs_to_values[rv].name]
    return (np.broadcast_to(np.asarray(mu.eval(), dtype=float), value.shape),
            np.broadcast_to(np.asarray(sigma.eval(), dtype=float), value.shape))


def description_length(result: Any, draws: int = 1000, random_seed: int | None = None) -> DescriptionLength:
    """``LC``, ``LE`` and ``LC + LE`` of a :class:`~bnn_ppl.inference.FitResult`.

    Parameters
    ----------
    result : FitResult
        A fitted model (any family; one member: for an ensemble use ``result.member(k)``).
    draws : int
        Monte Carlo draws from q for the terms that are not analytic.
    random_seed : int, optional
        Seeds the draws.

    Returns
    -------
    DescriptionLength

    Examples
    --------
    >>> dl = result.description_length(draws=200, random_seed=0)
    >>> dl.lc_bits > 0, abs(dl.lc_bits + dl.le_bits - dl.total_bits) < 1e-6
    (True, True)
    """
    if isinstance(draws, bool) or not isinstance(draws, (int, np.integer)) or draws < 2:
        raise ParameterError(f"The 'draws' parameter of description_length must be an integer >= 2. Got {draws!r} instead.")
    posterior = result.posterior
    if posterior.members > 1:
        raise ParameterError(
            f"description_length is defined for one fit; this is an ensemble of {posterior.members}. Use "
            "result.member(k).description_length() for member k."
        )
    built = result.built
    if built.source is not None:
        raise ParameterError("description_length scores every training row in memory; this fit streamed its rows "
                             "from data larger than memory. Fit a model on rows that fit in memory to compute it.")
    model = built.model
    family = posterior.family
    params = {k: np.asarray(v, dtype=float) for k, v in posterior.values().items()}
    mu = params["mu"]
    marginal_std = family.marginal_std(params)
    mean_field = family.name == "advi"
    ordering = posterior.layout

    analytic: dict[str, float] = {}  # RV name -> analytic E_q[-log prior]
    mc_rvs = []
    for rv in model.free_RVs:
        value = model.rvs_to_values[rv]
        sl = ordering[value.name][1]
        normal = _constant_normal(model, rv)
        if normal is None:
            mc_rvs.append(rv)
            continue
        p_mu, p_sigma = (a.ravel() for a in normal)
        m, s = mu[sl], marginal_std[sl]
        analytic[rv.name] = float(np.sum(np.log(p_sigma * np.sqrt(2 * np.pi)) + (s**2 + (m - p_mu) ** 2) / (2 * p_sigma**2)))

    entropy = float(family.entropy(numpy_ops(), params))
    log_std = np.log(marginal_std)

    values = [model.rvs_to_values[rv] for rv in model.free_RVs]
    prior_terms = [term.sum() for term in model.logp(vars=mc_rvs, jacobian=True, sum=False)] if mc_rvs else []
    built.check_training_rows("description_length")
    full = built.full_batch()  # no total_size rescaling, no minibatch noise
    loglik = full.model.logp(vars=full.model.observed_RVs, jacobian=False)
    inputs = values if full is built else [full.model.rvs_to_values[full.model[rv.name]] for rv in model.free_RVs]
    loglik_fn = pytensor.function(inputs, loglik, on_unused_input="ignore")
    prior_fn = pytensor.function(values, prior_terms, on_unused_input="ignore") if prior_terms else None

    rng = np.random.default_rng(check_seed(random_seed, "description_length", generator=True))
    prior_draws = np.zeros((draws, len(mc_rvs)))
    loglik_draws = np.empty(draws)
    names = [v.name for v in values]
    thetas = posterior.draw(draws, rng)
    for i, theta in enumerate(thetas):
        point = {}
        for name, var in zip(names, values, strict=True):
            _, sl, shape, _ = ordering[name]
            point[name] = theta[sl].reshape(shape).astype(var.dtype)
        args = [point[n] for n in names]
        loglik_draws[i] = loglik_fn(*args)
        if prior_fn is not None:
            prior_draws[i] = prior_fn(*args)

    root = np.sqrt(draws)
    lc_draws = sum(analytic.values()) - prior_draws.sum(axis=1) - entropy
    total_draws = lc_draws - loglik_draws
    by_variable: dict[str, float] = {}
    if mean_field:  # the entropy splits over variables; each prior term is conditional on its parents
        mc_index = {rv.name: j for j, rv in enumerate(mc_rvs)}
        for rv, value in zip(model.free_RVs, values, strict=True):
            sl = ordering[value.name][1]
            h = float(np.sum(log_std[sl]) + 0.5 * (sl.stop - sl.start) * (1.0 + np.log(2 * np.pi)))
            cross = analytic[rv.name] if rv.name in analytic else -float(np.mean(prior_draws[:, mc_index[rv.name]]))
            by_variable[rv.name] = cross - h
    return DescriptionLength(
        lc=float(np.mean(lc_draws)),
        le=float(-np.mean(loglik_draws)),
        total=float(np.mean(total_draws)),
        lc_se=float(np.std(lc_draws, ddof=1) / root) if mc_rvs else 0.0,
        le_se=float(np.std(loglik_draws, ddof=1) / root),
        total_se=float(np.std(total_draws, ddof=1) / root),
        draws=int(draws),
        analytic=tuple(analytic),
        lc_by_variable=by_variable,
    )

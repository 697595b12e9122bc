"""``FitRecord``: what the optimisation produced, as plain data.

The record imports nothing above the inference layer (NumPyro's ``SVIRunResult`` is the
model). :class:`bnn_ppl.FitResult`, what :func:`bnn_ppl.fit` returns, adds the calls that
turn a record into a predictor, a model file or a DataTree, one layer up.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from bnn_ppl.compile import BuiltModel
from bnn_ppl.display import fit_html, fit_text
from bnn_ppl.inference.estimator import ELBO
from bnn_ppl.inference.posterior import VariationalPosterior

#: Why a fit stops: every step ran, Ctrl-C, a callback's StopIteration, or (fit_many) every member diverged.
STOP_REASONS = ("completed", "interrupted", "callback", "diverged")

__all__ = ["FitRecord", "STOP_REASONS"]


@dataclass(repr=False)
class FitRecord:
    """What the fitting loop produced (:func:`bnn_ppl.inference.fit.fit_record`).

    Attributes
    ----------
    built : BuiltModel
        The compiled spec and its ``pm.Model``.
    posterior : VariationalPosterior
        The fitted q: its family, flat layout and parameters (every member of an ensemble).
    losses : ndarray
        Negative ELBO estimate at every step (nats); for an ensemble, the members' mean.
    member_losses : ndarray or None
        (members, steps) losses of an ensemble's members; None for one fit.
    engine, backend : str
        How it was fitted.
    learning_rate : float
        Adam step size at the first step.
    lr_floor : float
        Final step size as a fraction of ``learning_rate`` (cosine decay over the second half; 1.0 is constant).
    n_steps : int
        Steps actually run (fewer than asked when interrupted or converged early).
    random_seed : int or None
        Seed of every random choice of the fit.
    member_seeds : tuple of int
        An ensemble's member seeds (``fit(..., random_seed=member_seeds[k])`` is member ``k``); empty for one fit.
    mc_draws : int
        Monte Carlo draws per step.
    elbo : ELBO
        The -ELBO estimator (:class:`~bnn_ppl.inference.estimator.ELBO`: closed-form KL, path gradient).
    timings : dict
        ``setup_s`` (graph building), ``compile_s``, ``fit_s`` (optimisation), ``total_s``.
    interrupted : bool
        True when Ctrl-C (a KeyboardInterrupt) stopped the fit (parameters are the last good ones).
    stop_reason : {"completed", "interrupted", "callback", "diverged"}
        Why the fit stopped: every step ran, Ctrl-C, a callback raised StopIteration
        (convergence, e.g. PyMC's ``CheckParametersConvergence``), or every member of a
        :func:`bnn_ppl.fit_many` run diverged (their remaining losses are NaN).
    """

    built: BuiltModel
    posterior: VariationalPosterior
    losses: np.ndarray
    engine: str
    backend: str
    learning_rate: float
    n_steps: int
    random_seed: int | None
    timings: dict[str, float]
    interrupted: bool = False
    lr_floor: float = 1.0
    stop_reason: str = "completed"
    member_losses: np.ndarray | None = None
    member_seeds: tuple[int, ...] = ()
    mc_draws: int = 1
    elbo: ELBO = ELBO()

    @property
    def spec(self):
        """The network spec (with ``input_dim`` resolved)."""
        return self.built.spec

    @property
    def family(self):
        """The variational family (:class:`~bnn_ppl.inference.families.Family`)."""
        return self.posterior.family

    @property
    def method(self) -> str:
        """The family's name (``"advi"``, ``"fullrank_advi"``, ``"lowrank_advi"``)."""
        return self.posterior.family.name

    @property
    def members(self) -> int:
        """Ensemble members (1 for one fit)."""
        return self.posterior.members

    @property
    def approx(self) -> Any:
        """PyMC's approximation (``MeanField``/``FullRank``) holding the fit; every PyMC tool works on it.

        Raises ``ParameterError`` for a family PyMC does not have and for ensembles.
        """
        return self.posterior.approx

    @property
    def final_loss(self) -> float:
        """Mean negative ELBO over the last 10% of steps (at most 1000)."""
        if self.losses.size == 0:
            return float("nan")
        tail = max(1, min(1000, self.losses.size // 10))
        return float(np.mean(self.losses[-tail:]))

    def __repr__(self) -> str:
        return fit_text(self)

    def _repr_html_(self) -> str:
        return fit_html(self)

    def params(self) -> dict[str, np.ndarray]:
        """Current variational parameters as numpy arrays (the family's ``param_names``)."""
        return self.posterior.values()

    def member(self, k: int) -> FitRecord:
        """Member ``k`` of an ensemble as a one-member fit (with ``approx`` for mean-field/full-rank)."""
        return replace(
            self,
            posterior=self.posterior.member(k, self.built.model),
            losses=self.losses if self.member_losses is None else self.member_losses[k],
            random_seed=self.member_seeds[k] if self.member_seeds else self.random_seed,
            timings=dict(self.timings),
            member_losses=None,
            member_seeds=(),
        )

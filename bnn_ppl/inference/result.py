"""``FitResult``: the record ``fit`` returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from bnn_ppl.compile import BuiltModel

if TYPE_CHECKING:  # pragma: no cover
    from bnn_ppl.predictive import Predictor

__all__ = ["FitResult"]


@dataclass
class FitResult:
    """What :func:`bnn_ppl.fit` returns.

    Attributes
    ----------
    built : BuiltModel
        The compiled spec and its ``pm.Model``.
    approx : pymc.variational.Approximation
        The fitted PyMC approximation (MeanField or FullRank); every PyMC tool works on it.
    losses : ndarray
        Negative ELBO estimate at every step (nats).
    method, engine, backend : str
        How it was fitted.
    learning_rate : float
        Adam step size at the first step.
    lr_floor : float
        Final step size as a fraction of ``learning_rate`` (cosine decay over the second half; 1.0 is constant).
    n_steps : int
        Steps actually run (fewer than asked when interrupted or converged early).
    random_seed : int or None
        Seed of every random choice of the fit.
    timings : dict
        ``setup_s`` (graph building), ``compile_s``, ``fit_s`` (optimisation), ``total_s``.
    interrupted : bool
        True when Ctrl-C (a KeyboardInterrupt) stopped the fit (parameters are the last good ones).
    stop_reason : {"completed", "interrupted", "callback"}
        Why the fit stopped: every step ran, Ctrl-C, or a callback raised StopIteration
        (convergence, e.g. PyMC's ``CheckParametersConvergence``).
    """

    built: BuiltModel
    approx: Any
    losses: np.ndarray
    method: str
    engine: str
    backend: str
    learning_rate: float
    n_steps: int
    random_seed: int | None
    timings: dict[str, float]
    interrupted: bool = False
    lr_floor: float = 1.0
    stop_reason: str = "completed"
    _predictors: dict = field(default_factory=dict, repr=False)

    @property
    def spec(self):
        """The network spec (with ``input_dim`` resolved)."""
        return self.built.spec

    @property
    def final_loss(self) -> float:
        """Mean negative ELBO over the last 10% of steps (at most 1000)."""
        if self.losses.size == 0:
            return float("nan")
        tail = max(1, min(1000, self.losses.size // 10))
        return float(np.mean(self.losses[-tail:]))

    def __repr__(self) -> str:
        from bnn_ppl.display import fit_text

        return fit_text(self)

    def _repr_html_(self) -> str:
        from bnn_ppl.display import fit_html

        return fit_html(self)

    def params(self) -> dict[str, np.ndarray]:
        """Current variational parameters as numpy arrays (``mu``, ``rho`` or ``L_tril``)."""
        return {name: np.asarray(p.get_value()) for name, p in _param_dict(self.approx).items()}

    def predictor(self, backend: str | None = None, kind: str = "auto") -> Predictor:
        """The compiled posterior-predictive sampler, built once per (backend, kind) and cached.

        See :class:`bnn_ppl.predictive.Predictor`.
        """
        from bnn_ppl.predictive import make_predictor

        key = (backend, kind)
        if key not in self._predictors:
            self._predictors[key] = make_predictor(self, backend=backend, kind=kind)
        return self._predictors[key]

    def save(self, path: Any, *, metadata: dict | None = None, include_data: bool = True) -> Any:
        """Write this fit to one file (zip of JSON + .npy, atomic): see :func:`bnn_ppl.io.save`."""
        from bnn_ppl.io import save

        return save(self, path, metadata=metadata, include_data=include_data)

    def description_length(self, draws: int = 1000, *, random_seed: int | None = None):
        """``LC = KL(q || prior)``, ``LE = E_q[-log p(D | theta)]`` and their sum, in nats and bits.

        See :func:`bnn_ppl.inference.description_length.description_length`.
        """
        from bnn_ppl.inference.description_length import description_length

        return description_length(self, draws=draws, random_seed=random_seed)

    def to_datatree(self, draws: int = 1000, X: Any = None, y: Any = None, *, random_seed: int | None = None):
        """An ArviZ ``xarray.DataTree``: see :func:`bnn_ppl.arviz.to_datatree`."""
        from bnn_ppl.arviz import to_datatree

        return to_datatree(self, draws=draws, X=X, y=y, random_seed=random_seed)


def _param_dict(approx: Any) -> dict[str, Any]:
    group = approx.groups[0]
    return dict(group.params_dict)

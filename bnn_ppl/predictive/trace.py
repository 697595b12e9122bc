"""The posterior predictive of MCMC draws (``pm.sample`` on ``built.model``) by the same compiled forward pass."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np

from bnn_ppl.errors import DataError
from bnn_ppl.inference.families import flat_layout

__all__ = ["DrawsPosterior", "trace_predictor", "flat_draws"]


def flat_draws(built: Any, posterior: Any) -> np.ndarray:
    """(chains, draws, D) unconstrained flat parameters from a ``posterior`` group of ``built.model``'s variables.

    Raises
    ------
    DataError
        When the group lacks one of the model's free variables or holds other shapes.
    """
    model = built.model
    by_value = {v.name: v for v in model.value_vars}
    columns = []
    for name, (_, _, shape, _) in flat_layout(model).items():
        rv = model.values_to_rvs[by_value[name]]
        if rv.name not in posterior:
            raise DataError(f"The posterior has no variable {rv.name!r}; pass the trace of pm.sample(model=built.model).")
        arr = np.asarray(posterior[rv.name])
        if arr.ndim < 2 or arr.shape[2:] != tuple(shape):
            raise DataError(f"The posterior's {rv.name!r} has shape {arr.shape}; expected (chain, draw, *{tuple(shape)}).")
        transform = model.rvs_to_transforms.get(rv)
        if transform is not None:
            arr = np.asarray(transform.forward(arr, *rv.owner.inputs).eval())
        columns.append(arr.reshape(arr.shape[0], arr.shape[1], -1))
    return np.concatenate(columns, axis=-1)


class DrawsPosterior:
    """Fixed posterior draws (one chain per member) in the flat layout, read like a fitted q."""

    def __init__(self, built: Any, draws: np.ndarray) -> None:
        self.layout = flat_layout(built.model)
        self.thetas = np.asarray(draws, dtype=float)
        self.members, self.n_draws, self.size = self.thetas.shape

    def draw(self, draws: int, rng: np.random.Generator, *, per_member: bool = False, start: int = 0,
             total: int | None = None) -> np.ndarray:
        """``draws`` rows resampled with replacement (per chain with ``per_member``).

        ``start`` and ``total`` (the window of a batched draw) change nothing here: every row comes
        from the pooled draws of all chains, whichever batch asks for it.
        """
        if per_member:
            return np.concatenate([c[rng.integers(0, self.n_draws, draws)] for c in self.thetas])
        flat = self.thetas.reshape(-1, self.size)
        return flat[rng.integers(0, flat.shape[0], draws)]


def trace_predictor(built: Any, trace: Any, backend: str | None = None) -> Any:
    """A :class:`~bnn_ppl.Predictor` over MCMC draws of ``built.model`` (e.g. NUTS from ``pm.sample``).

    Predictions, uncertainty and :func:`~bnn_ppl.predictive.quality.evaluate` then compare a
    variational fit with NUTS through the same compiled forward pass.

    Examples
    --------
    >>> import pymc as pm
    >>> from bnn_ppl.predictive import evaluate
    >>> idata = pm.sample(draws=100, tune=100, chains=1, model=built.model, random_seed=0, progressbar=False,
    ...                   compute_convergence_checks=False)
    >>> evaluate(trace_predictor(built, idata), X_test, y_test).accuracy > 0.9
    True
    """
    from bnn_ppl.predictive.predictor import Predictor
    from bnn_ppl.predictive.samplers import BatchedSampler

    posterior = trace["posterior"] if "posterior" in getattr(trace, "children", {}) else trace
    shell = SimpleNamespace(built=built, posterior=DrawsPosterior(built, flat_draws(built, posterior)))
    return Predictor(BatchedSampler(shell, backend=backend), built.spec, feature_names=built.feature_names)

"""The engine registry and the request every engine receives."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from bnn_ppl.compile import BuiltModel
from bnn_ppl.errors import ParameterError
from bnn_ppl.inference.estimator import ELBO
from bnn_ppl.registry import Registry

__all__ = ["ENGINES", "Engine", "EngineRun", "FitRequest", "resolve_engine", "step_size_factor", "HOLD_FRACTION"]

#: Share of the steps run at the full step size before the cosine decay starts. 784-256-10,
#: 5,000 steps, batch 256: decaying from step 0 left the posterior sigmas of the wide layer
#: half-grown (-ELBO 279k, accuracy 0.824); holding the first half got 198k and 0.846
#: (constant: 161k, 0.846), while digits (0.9666 median over 5 seeds) and moons (0.960) kept
#: the decayed schedule's accuracy.
HOLD_FRACTION = 0.5


def step_size_factor(t: Any, n_total: Any, floor: Any, xp: Any = np) -> Any:
    """Step-size factor at step ``t`` of ``n_total``: 1 for the first ``HOLD_FRACTION`` of the
    steps, then a cosine down to ``floor`` at the last step.

    ``xp`` is the array module the engine traces with (``numpy``, ``jax.numpy`` or
    ``pytensor.tensor``); each has ``clip`` and ``cos``.

    Examples
    --------
    >>> [round(float(step_size_factor(t, 100, 0.01)), 3) for t in (0, 50, 75, 100)]
    [1.0, 1.0, 0.505, 0.01]
    """
    progress = xp.clip((t / n_total - HOLD_FRACTION) / (1.0 - HOLD_FRACTION), 0.0, 1.0)
    return floor + (1.0 - floor) * 0.5 * (1.0 + xp.cos(np.pi * progress))


@dataclass(frozen=True)
class FitRequest:
    """Everything an engine needs for one fit.

    ``posterior`` (a :class:`~bnn_ppl.inference.posterior.VariationalPosterior`) holds the
    family and the initial parameters; engines write the fitted ones back into it. With
    ``posterior.members > 1`` the members are independent fits run together, member ``k``
    seeded by ``member_seeds[k]``. Each step averages ``mc_draws`` Monte Carlo draws; ``elbo``
    (:class:`~bnn_ppl.inference.estimator.ELBO`) says how the -ELBO is estimated from them.

    ``member_hyper`` (JAX engine) gives members their own ``learning_rate``, ``lr_floor``,
    ``prior_scale`` (models built with ``prior_scale=``) and training ``rows``/``n_rows``
    (cross-validation folds), each an array with a leading members axis; unset entries take
    the request's values. With ``tolerate_divergence`` a diverging member stops (NaN losses
    from then on, last good parameters kept) while the others go on; the fit fails only when
    every member diverged. ``mesh`` (a ``jax.sharding.Mesh``, JAX engine) splits each step's
    batch rows over its devices.
    """

    built: BuiltModel
    posterior: Any
    n: int
    learning_rate: float
    lr_floor: float
    backend: str | None
    random_seed: int | None
    progressbar: bool
    callbacks: Sequence[Callable]
    callback_every: int | None = None
    mc_draws: int = 1
    member_seeds: tuple[int, ...] = ()
    member_hyper: dict[str, Any] | None = None
    tolerate_divergence: bool = False
    mesh: Any = None
    elbo: ELBO = ELBO()

    @property
    def family(self) -> Any:
        return self.posterior.family

    @property
    def callback_target(self) -> Any:
        """What callbacks receive as ``approx``: PyMC's approximation when there is one, else the posterior."""
        return self.posterior.approx if self.posterior.has_approx else self.posterior

    def seed(self) -> int:
        return 0 if self.random_seed is None else int(self.random_seed)

    def chunk(self, natural: int) -> int:
        """Steps per compiled call: the engine's own length, shortened so callbacks run every
        ``callback_every`` steps when asked."""
        if self.callbacks and self.callback_every:
            return max(1, min(natural, self.callback_every))
        return natural


@dataclass(frozen=True)
class EngineRun:
    """What an engine returns: per-step losses and its own timings."""

    losses: np.ndarray
    compile_s: float
    fit_s: float
    backend: str
    interrupted: bool = False
    first_chunk_s: float = float("nan")
    chunk_steps: int = 0
    stop_reason: str = "completed"


class Engine(Protocol):
    """An ADVI engine."""

    def run(self, request: FitRequest) -> EngineRun: ...


#: Engine name -> factory returning an Engine.
ENGINES: Registry[Callable[[], Engine]] = Registry("engine", error=ParameterError)


def resolve_engine(engine: str) -> str:
    """Map ``"auto"`` to the fastest available engine; validate other names.

    Raises
    ------
    ParameterError
        For a name that is neither ``"auto"`` nor a registered engine (the message lists both).
    """
    if engine == "auto":
        if "jax" in ENGINES and importlib.util.find_spec("jax") is not None:
            return "jax"
        # numba scan: 2.2x pm.fit's steps/s on moons and 1.7x on digits (bench/LAST_RUN.md)
        return "numba" if "numba" in ENGINES else "pymc"
    if not isinstance(engine, str) or engine not in ENGINES:
        raise ParameterError(
            f"The 'engine' parameter must be one of {['auto', *ENGINES.names()]}. Got {engine!r} instead."
        )
    return engine


def has_folds(request: FitRequest) -> bool:
    """Whether each member trains on rows of its own (``member_hyper["rows"]``: cross-validation folds)."""
    return "rows" in (request.member_hyper or {})


def structure_key(request: FitRequest, flat: Any) -> tuple:
    """Everything the compiled step depends on: the spec, data shapes/dtypes, family, estimator.

    Learning rates, prior scales and training rows are inputs (``hyper``), not part of the key.
    A model a user extended (``built.extended``) is never looked up by it (see the engines)."""
    built = request.built
    return (
        built.spec,  # frozen dataclasses: hashable and compared by value
        flat.X.shape[1:],
        str(flat.X.dtype),
        str(flat.y_data.dtype),
        flat.size,
        built.n_obs,
        built.batch_size,
        built.prior_scale_data is not None,
        request.family,
        request.mc_draws,
        request.elbo,
        request.posterior.members,
        request.tolerate_divergence,
        has_folds(request),
        None if request.mesh is None else (tuple(d.id for d in request.mesh.devices.flat), request.mesh.axis_names),
        built.source is not None,
    )

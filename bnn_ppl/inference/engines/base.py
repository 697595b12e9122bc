"""The engine registry and the request every engine receives."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from bnn_ppl.compile import BuiltModel
from bnn_ppl.registry import Registry

__all__ = ["ENGINES", "Engine", "EngineRun", "FitRequest", "resolve_engine"]


@dataclass(frozen=True)
class FitRequest:
    """Everything an engine needs for one fit.

    ``inference`` is the PyMC ``ADVI``/``FullRankADVI`` object whose approximation holds the
    initial parameters; engines update ``inference.approx`` in place.
    """

    built: BuiltModel
    inference: Any
    method: str
    n: int
    learning_rate: float
    lr_floor: float
    backend: str | None
    random_seed: int | None
    progressbar: bool
    callbacks: Sequence[Callable]


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


class Engine(Protocol):
    """An ADVI engine."""

    def run(self, request: FitRequest) -> EngineRun: ...


#: Engine name -> factory returning an Engine.
ENGINES: Registry[Callable[[], Engine]] = Registry("engine")


def resolve_engine(engine: str) -> str:
    """Map ``"auto"`` to the fastest available engine; validate other names."""
    if engine == "auto":
        if "jax" in ENGINES and importlib.util.find_spec("jax") is not None:
            return "jax"
        # numba scan: 2.2x pm.fit's steps/s on moons and 1.7x on digits (bench/LAST_RUN.md)
        return "numba" if "numba" in ENGINES else "pymc"
    ENGINES.get(engine, field="engine")
    return engine

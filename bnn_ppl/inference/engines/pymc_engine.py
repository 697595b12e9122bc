"""The reference engine: PyMC's own ``Inference.fit`` loop with Adam."""

from __future__ import annotations

import time

import numpy as np
import pymc as pm

from bnn_ppl.inference.engines.base import ENGINES, EngineRun, FitRequest

__all__ = ["PymcEngine"]


class PymcEngine:
    """Runs ``inference.fit`` (a Python loop calling one compiled step per iteration)."""

    def run(self, request: FitRequest) -> EngineRun:
        backend = request.backend or "numba"
        start = time.perf_counter()
        request.inference.fit(
            request.n,
            obj_optimizer=pm.adam(learning_rate=request.learning_rate),
            backend=backend,
            progressbar=request.progressbar,
            callbacks=list(request.callbacks),
        )
        elapsed = time.perf_counter() - start
        losses = np.asarray(request.inference.hist, dtype=float)
        return EngineRun(losses=losses, compile_s=float("nan"), fit_s=elapsed, backend=backend,
                         interrupted=losses.size < request.n)


ENGINES.add("pymc", PymcEngine)

"""The reference engine: PyMC's own ``Inference.fit`` loop with Adam."""

from __future__ import annotations

import time

import numpy as np
import pymc as pm

from bnn_ppl.inference.engines.base import ENGINES, EngineRun, FitRequest
from bnn_ppl.inference.progress import Progress

__all__ = ["PymcEngine"]

#: Steps between two progress-bar updates.
_PROGRESS_EVERY = 200


class PymcEngine:
    """Runs ``inference.fit`` (a Python loop calling one compiled step per iteration).

    PyMC's own progress bar is replaced by :class:`~bnn_ppl.inference.progress.Progress` (it
    needs ipywidgets in Jupyter). PyMC reports the loss of a minibatch model scaled by
    ``batch_size / n_obs``; the losses returned here are rescaled to the full-data negative ELBO,
    the same scale as the other engines.
    """

    def run(self, request: FitRequest) -> EngineRun:
        backend = request.backend or "numba"
        built = request.built
        scale = built.n_obs / built.batch_size if built.batch_size else 1.0
        progress = Progress(request.n, enabled=request.progressbar)

        def report(approx, losses, i):
            if losses is not None and (i % _PROGRESS_EVERY == 0 or i == request.n):
                progress.update(i, float(np.mean(losses[-_PROGRESS_EVERY:])) * scale)

        start = time.perf_counter()
        try:
            request.inference.fit(
                request.n,
                obj_optimizer=pm.adam(learning_rate=request.learning_rate),
                backend=backend,
                progressbar=False,
                callbacks=[report, *request.callbacks],
            )
        finally:
            progress.close()
        elapsed = time.perf_counter() - start
        losses = np.asarray(request.inference.hist, dtype=float) * scale
        return EngineRun(losses=losses, compile_s=float("nan"), fit_s=elapsed, backend=backend,
                         interrupted=losses.size < request.n)


ENGINES.add("pymc", PymcEngine)

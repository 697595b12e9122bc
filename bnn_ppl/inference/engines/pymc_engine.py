"""The reference engine: PyMC's own ``Inference.fit`` loop with Adam."""

from __future__ import annotations

import logging
import time

import numpy as np
import pymc as pm
from pymc.logprob.utils import ParameterValueError
from pymc.variational import inference as pm_inference
from pymc.variational.inference import KLqp

from bnn_ppl.inference.engines.base import ENGINES, EngineRun, FitRequest
from bnn_ppl.inference.engines.driver import deferred_interrupt, divergence_error
from bnn_ppl.inference.progress import Progress

__all__ = ["PymcEngine"]

#: Steps between two progress-bar updates.
_PROGRESS_EVERY = 200
#: Copy the parameters after every step while they are this small (else every _PROGRESS_EVERY).
_SNAPSHOT_EVERY_STEP = 100_000


class PymcEngine:
    """Runs ``inference.fit`` (a Python loop calling one compiled step per iteration).

    PyMC's own progress bar is replaced by :class:`~bnn_ppl.inference.progress.Progress` (it
    needs ipywidgets in Jupyter), and its "Finished" log line is silenced with
    ``progressbar=False``. PyMC reports the loss of a minibatch model scaled by
    ``batch_size / n_obs``; the losses returned here are rescaled to the full-data negative ELBO,
    the same scale as the other engines. Ctrl-C stops after the current step; a NaN loss raises
    :class:`~bnn_ppl.FitError` with the parameters of the last good step written back.
    """

    def run(self, request: FitRequest) -> EngineRun:
        backend = request.backend or "numba"
        built = request.built
        scale = built.n_obs / built.batch_size if built.batch_size else 1.0
        progress = Progress(request.n, enabled=request.progressbar)
        approx = request.posterior.approx  # mean-field / full-rank, one member (fit checks)
        inference = KLqp(approx)
        params = list(approx.groups[0].params_dict.values())
        every = 1 if sum(p.get_value().size for p in params) <= _SNAPSHOT_EVERY_STEP else _PROGRESS_EVERY
        state = {"reason": "completed", "good": [p.get_value().copy() for p in params]}

        def guard(approx, losses, i):
            if i % every == 0 and losses is not None and np.isfinite(losses[-1]):
                values = [p.get_value().copy() for p in params]
                if all(np.isfinite(v).all() for v in values):  # the step's update too, not only its loss
                    state["good"] = values
            if losses is not None and (i % _PROGRESS_EVERY == 0 or i == request.n):
                progress.update(i, float(np.mean(losses[-_PROGRESS_EVERY:])) * scale)
            if interrupt.requested:
                state["reason"] = "interrupted"
                raise KeyboardInterrupt

        def watched(callback):
            def call(approx, losses, i):
                try:
                    callback(approx, losses, i)
                except StopIteration:
                    state["reason"] = "callback"
                    raise
                except KeyboardInterrupt:
                    state["reason"] = "interrupted"
                    raise
            return call

        logger = pm_inference.logger
        level = logger.level
        if not request.progressbar:
            logger.setLevel(logging.WARNING)
        start = time.perf_counter()
        try:
            with deferred_interrupt() as interrupt:
                inference.fit(
                    request.n,
                    obj_n_mc=request.mc_draws,
                    obj_optimizer=pm.adam(learning_rate=request.learning_rate),
                    backend=backend,
                    progressbar=False,
                    callbacks=[guard, *map(watched, request.callbacks)],
                )
        except (FloatingPointError, ParameterValueError) as err:
            for p, value in zip(params, state["good"], strict=True):
                p.set_value(value)
            raise divergence_error(len(inference.hist), request.learning_rate, type(err).__name__) from None
        finally:
            logger.setLevel(level)
            progress.close()
        elapsed = time.perf_counter() - start
        losses = np.asarray(inference.hist, dtype=float) * scale
        if not (np.all(np.isfinite(losses)) and all(np.isfinite(p.get_value()).all() for p in params)):
            # PyMC's loop stops at NaN only: an infinite loss or parameter ends here, as on every engine
            for p, value in zip(params, state["good"], strict=True):
                p.set_value(value)
            bad = np.flatnonzero(~np.isfinite(losses))
            raise divergence_error(int(bad[0]) if bad.size else losses.size - 1, request.learning_rate)
        if state["reason"] == "completed" and losses.size < request.n:
            state["reason"] = "interrupted"  # a KeyboardInterrupt PyMC caught itself
        return EngineRun(losses=losses, compile_s=float("nan"), fit_s=elapsed, backend=backend,
                         interrupted=state["reason"] == "interrupted", stop_reason=state["reason"])


ENGINES.add("pymc", PymcEngine)

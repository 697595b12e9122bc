"""The loop around a compiled chunk of ADVI steps: progress, callbacks, NaN and Ctrl-C handling."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from bnn_ppl.errors import FitError
from bnn_ppl.inference.engines.base import EngineRun, FitRequest

__all__ = ["run_chunks"]


def run_chunks(
    request: FitRequest,
    run_chunk: Callable[[Any, int], tuple[Any, np.ndarray]],
    state: Any,
    chunk_size: int,
    write_back: Callable[[Any], None],
    *,
    backend: str,
    setup_s: float,
) -> EngineRun:
    """Call ``run_chunk(state, n_active)`` until ``request.n`` steps ran.

    ``run_chunk`` runs ``n_active`` steps (``chunk_size`` except for a shorter last chunk; an
    engine may run a full chunk with the extra steps masked out) and returns the new state and
    at least the ``n_active`` losses. After each chunk the parameters are written into the PyMC
    approximation (``write_back``), the loss is checked for NaN, the progress bar updated and the
    callbacks called as ``callback(approx, losses, i)``. A KeyboardInterrupt or a callback's
    StopIteration stops the fit keeping the last good parameters.

    Returns
    -------
    EngineRun
        ``compile_s`` is ``setup_s`` plus the first chunk's excess over a steady chunk (the
        compilation of the chunk function happens on its first call).
    """
    from bnn_ppl.inference.progress import Progress

    start = time.perf_counter()
    approx = request.inference.approx
    losses: list[np.ndarray] = []
    done = 0
    interrupted = False
    first_chunk_s = float("nan")
    progress = Progress(request.n, enabled=request.progressbar)
    try:
        while done < request.n:
            active = min(chunk_size, request.n - done)
            t0 = time.perf_counter()
            new_state, chunk_losses = run_chunk(state, active)
            chunk_losses = np.asarray(chunk_losses, dtype=float)[:active]
            if done == 0:
                first_chunk_s = time.perf_counter() - t0
            if not np.all(np.isfinite(chunk_losses)):
                bad = done + int(np.argmax(~np.isfinite(chunk_losses)))
                write_back(state)
                raise FitError(
                    f"The loss became NaN or infinite at step {bad}; the parameters before that chunk "
                    f"were kept. Lower learning_rate (now {request.learning_rate}), standardise X, "
                    "or use narrower priors."
                )
            state = new_state
            losses.append(chunk_losses)
            done += active
            write_back(state)
            all_losses = np.concatenate(losses)
            progress.update(done, float(np.mean(chunk_losses[-min(100, active):])))
            for callback in request.callbacks:
                callback(approx, all_losses, done)
    except (KeyboardInterrupt, StopIteration):
        interrupted = True
        write_back(state)
    finally:
        progress.close()
    out = np.concatenate(losses) if losses else np.zeros(0)
    fit_s = time.perf_counter() - start
    steady_chunk_s = (fit_s - first_chunk_s) / (out.size - chunk_size) * chunk_size if out.size > chunk_size else 0.0
    return EngineRun(
        losses=out,
        compile_s=setup_s + max(0.0, first_chunk_s - steady_chunk_s),
        fit_s=fit_s,
        backend=backend,
        interrupted=interrupted,
        first_chunk_s=first_chunk_s,
        chunk_steps=chunk_size,
    )

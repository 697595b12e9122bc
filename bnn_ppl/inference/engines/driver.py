"""The loop around a compiled chunk of ADVI steps: progress, callbacks, NaN and Ctrl-C handling."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from pymc.logprob.utils import ParameterValueError

from bnn_ppl.errors import FitError
from bnn_ppl.inference.engines.base import EngineRun, FitRequest

__all__ = ["run_chunks", "deferred_interrupt", "divergence_error"]


def divergence_error(step: int | None, learning_rate: float, detail: str = "") -> FitError:
    """The one error every engine raises when the loss or a parameter stops being finite."""
    where = f"at step {step}" if step is not None else "during the fit"
    extra = f" ({detail})" if detail else ""
    return FitError(
        f"The fit diverged {where}{extra}: the loss or a parameter became NaN or infinite; the last "
        f"good parameters were kept. Lower learning_rate (now {learning_rate}), standardise X, "
        "or use narrower priors."
    )


class _Interrupt:
    """Set by the first Ctrl-C; the loop stops after the current compiled chunk."""

    def __init__(self) -> None:
        self.requested = False


_ACTIVE: _Interrupt | None = None  # the flag of the outermost deferred_interrupt, while it runs


@contextmanager
def deferred_interrupt() -> Iterator[_Interrupt]:
    """Turn the first SIGINT into a flag checked between chunks; a second one interrupts at once.

    A KeyboardInterrupt raised *inside* a compiled call (numba unboxing its arguments) leaves
    the call in a broken state (``SystemError: ... returned a result with an exception set``)
    and loses the fit; deferring it to the chunk boundary keeps the last good parameters.
    Outside the main thread (where signals cannot be handled) this does nothing. Nested, it
    shares the outer flag: ``fit`` holds one over the engine's set-up and compilation, so a
    Ctrl-C there stops the fit after its first chunk instead of being lost.
    """
    global _ACTIVE
    if _ACTIVE is not None:
        yield _ACTIVE
        return
    flag = _Interrupt()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum: int, frame: Any) -> None:
        if flag.requested:  # second Ctrl-C: stop now
            signal.signal(signal.SIGINT, previous if callable(previous) else signal.default_int_handler)
            raise KeyboardInterrupt
        flag.requested = True

    signal.signal(signal.SIGINT, handler)
    _ACTIVE = flag
    try:
        yield flag
    finally:
        _ACTIVE = None
        signal.signal(signal.SIGINT, previous)


def run_chunks(
    request: FitRequest,
    run_chunk: Callable[[Any, int], tuple[Any, np.ndarray]],
    state: Any,
    chunk_size: int,
    write_back: Callable[[Any], None],
    *,
    backend: str,
    setup_s: float,
    finite: Callable[[Any], bool] | None = None,
) -> EngineRun:
    """Call ``run_chunk(state, n_active)`` until ``request.n`` steps ran.

    ``run_chunk`` runs ``n_active`` steps (``chunk_size`` except for a shorter last chunk; an
    engine may run a full chunk with the extra steps masked out) and returns the new state and
    at least the ``n_active`` losses (per member for an ensemble: shape (members, chunk)). After each chunk the parameters are written into the PyMC
    approximation (``write_back``), the loss is checked for NaN, the progress bar updated and the
    callbacks called as ``callback(approx, losses, i)``. Ctrl-C (deferred to the end of the
    running chunk) or a callback's StopIteration stops the fit keeping the last good parameters;
    a non-finite loss, a failed parameter check or parameters that ``finite(new_state)`` finds
    not finite raise :class:`~bnn_ppl.FitError` after writing back the parameters from before
    the failing chunk.

    Returns
    -------
    EngineRun
        ``compile_s`` is ``setup_s`` plus the first chunk's excess over a steady chunk (the
        compilation of the chunk function happens on its first call).
    """
    from bnn_ppl.inference.progress import Progress

    start = time.perf_counter()
    approx = request.callback_target if request.callbacks else None  # made only for callbacks
    losses: list[np.ndarray] = []
    done = 0
    stop_reason = "completed"
    first_chunk_s = float("nan")
    progress = Progress(request.n, enabled=request.progressbar)
    with deferred_interrupt() as interrupt:
        try:
            while done < request.n:
                active = min(chunk_size, request.n - done)
                t0 = time.perf_counter()
                try:
                    new_state, chunk_losses = run_chunk(state, active)
                except (ParameterValueError, FloatingPointError) as err:
                    write_back(state)
                    raise divergence_error(None, request.learning_rate, f"between steps {done} and "
                                           f"{done + active}: {type(err).__name__}") from None
                chunk_losses = np.asarray(chunk_losses, dtype=float)[..., :active]  # (active,) or (members, active)
                if done == 0:
                    first_chunk_s = time.perf_counter() - t0
                if request.tolerate_divergence:
                    # diverged members report NaN and keep their last good parameters; stop when all did
                    finite = np.isfinite(chunk_losses).reshape(-1, active)
                    failing = not finite[:, -1].any()
                else:  # a step's loss is taken before its update: the chunk's last update is checked too
                    failing = not np.all(np.isfinite(chunk_losses)) or (finite is not None and not finite(new_state))
                if failing and request.tolerate_divergence:
                    # every member diverged: they keep their last good parameters, the rest of their
                    # history is NaN (fit_many marks them all, and its table still comes back)
                    state = new_state
                    tail = np.full((*chunk_losses.shape[:-1], request.n - done - active), np.nan)
                    losses.extend([chunk_losses, tail])
                    write_back(state)
                    stop_reason = "diverged"
                    break
                if failing:
                    write_back(state)
                    bad = ~np.isfinite(chunk_losses).reshape(-1, active).all(axis=0)
                    step = done + int(np.argmax(bad)) if bad.any() else done + active - 1  # the last update
                    raise divergence_error(step, request.learning_rate)
                state = new_state
                losses.append(chunk_losses)
                done += active
                write_back(state)
                all_losses = np.concatenate(losses, axis=-1)
                if all_losses.ndim > 1:  # an ensemble: callbacks see the members' mean
                    all_losses = np.nanmean(all_losses, axis=0) if request.tolerate_divergence else all_losses.mean(axis=0)
                progress.update(done, float(np.nanmean(chunk_losses[..., -min(100, active):])))
                for callback in request.callbacks:
                    callback(approx, all_losses, done)
                if interrupt.requested:
                    stop_reason = "interrupted"
                    break
        except KeyboardInterrupt:  # raised by a callback, or a second Ctrl-C
            stop_reason = "interrupted"
            write_back(state)
        except StopIteration:
            stop_reason = "callback"
            write_back(state)
        finally:
            progress.close()
    out = np.concatenate(losses, axis=-1) if losses else np.zeros(0)
    fit_s = time.perf_counter() - start
    steps = out.shape[-1]
    steady_chunk_s = (fit_s - first_chunk_s) / (steps - chunk_size) * chunk_size if steps > chunk_size else 0.0
    return EngineRun(
        losses=out,
        compile_s=setup_s + max(0.0, first_chunk_s - steady_chunk_s),
        fit_s=fit_s,
        backend=backend,
        interrupted=stop_reason == "interrupted",
        first_chunk_s=first_chunk_s,
        chunk_steps=chunk_size,
        stop_reason=stop_reason,
    )

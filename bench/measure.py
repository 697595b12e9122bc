"""Measurement helpers: result rows, steady-state step clocks, peak memory, metrics, call timing."""

from __future__ import annotations

import os
import resource
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["FitRow", "PredictRow", "StepClock", "PeakMemory", "classification_metrics", "time_calls", "tail_mean"]

_EPS = 1e-12


@dataclass
class FitRow:
    """One fit of one workload by one runner (a row of the fit table).

    ``steps_per_s`` is steady state: first-call compilation is excluded. ``setup_compile_s``
    is everything else in the wall time of build + fit (model building, graph compilation,
    the first step): ``fit_wall_s - n_steps / steps_per_s``.
    """

    workload: str
    runner: str
    engine: str
    backend: str
    n_steps: int = 0
    dtype: str = ""
    steps_per_s: float = float("nan")
    setup_compile_s: float = float("nan")
    fit_wall_s: float = float("nan")
    final_neg_elbo: float = float("nan")
    test_accuracy: float = float("nan")
    test_nll: float = float("nan")
    predict_s: float = float("nan")
    peak_mem_mb: float = float("nan")
    ratio_vs_pm_fit: float | None = None
    ratio_vs_numpyro: float | None = None
    notes: str = ""
    error: str | None = None


@dataclass
class PredictRow:
    """One posterior-predictive route timed on ``draws`` x ``rows`` (a row of the predict table)."""

    route: str
    backend: str
    draws: int
    rows: int
    compile_s: float = float("nan")
    predict_s: float = float("nan")
    speedup_vs_sample_node: float | None = None
    speedup_vs_spp: float | None = None
    notes: str = ""
    error: str | None = None


class StepClock:
    """A ``pm.fit``-style callback timing steady-state steps: rate between its first and last call.

    Called as ``clock(approx, losses, i)`` after step ``i``; the first call comes right after the
    first (compiling) step, so the rate covers only already-compiled steps. It does O(1) work
    per step.
    """

    def __init__(self) -> None:
        self.first: tuple[int, float] | None = None
        self.last: tuple[int, float] | None = None

    def __call__(self, approx: Any, losses: Any, i: int) -> None:
        now = time.perf_counter()
        if self.first is None:
            self.first = (i, now)
        self.last = (i, now)

    @property
    def steps_per_s(self) -> float:
        """Steps per second between the first and last call (NaN with fewer than two calls)."""
        if self.first is None or self.last is None or self.last[0] <= self.first[0]:
            return float("nan")
        return (self.last[0] - self.first[0]) / (self.last[1] - self.first[1])


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakMemory:
    """Peak resident-memory growth (MB) of this process inside a ``with`` block.

    A daemon thread samples the resident set size every ``interval`` seconds (Linux
    ``/proc/self/statm``); the result is the highest sample minus the size at entry, so it
    counts numpy, numba, JAX and compiler memory alike. Elsewhere it falls back to the
    growth of ``ru_maxrss``, which only sees new process-wide highs.
    """

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.peak_mb = float("nan")
        self._stop = threading.Event()
        self._linux = os.path.exists("/proc/self/statm")

    def __enter__(self) -> PeakMemory:
        if self._linux:
            self._start = self._peak = _rss_bytes()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        else:  # pragma: no cover - non-Linux fallback
            self._start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self._peak = max(self._peak, _rss_bytes())

    def __exit__(self, *exc: Any) -> None:
        if self._linux:
            self._stop.set()
            self._thread.join()
            self._peak = max(self._peak, _rss_bytes())
        else:  # pragma: no cover
            self._peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        self.peak_mb = (self._peak - self._start) / 2**20


def classification_metrics(draws: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Accuracy and mean negative log predictive density of posterior-predictive draws.

    Parameters
    ----------
    draws : ndarray
        p(y=1) of shape (draws, rows) or class probabilities (draws, rows, classes).
    y : ndarray
        Integer labels (rows,).

    Returns
    -------
    accuracy, nll : float
        NLL is ``-mean_i log mean_s p_s(y_i)`` in nats.
    """
    draws = np.asarray(draws, dtype=float)
    if draws.ndim == 2:
        draws = np.stack([1.0 - draws, draws], axis=-1)
    proba = draws.mean(axis=0)
    y = np.asarray(y).astype(int)
    accuracy = float(np.mean(proba.argmax(axis=1) == y))
    nll = float(-np.mean(np.log(np.clip(proba[np.arange(y.size), y], _EPS, 1.0))))
    return accuracy, nll


def tail_mean(losses: np.ndarray, tail: int = 1000) -> float:
    """Mean of the last ``tail`` finite losses (the final -ELBO)."""
    losses = np.asarray(losses, dtype=float)
    losses = losses[np.isfinite(losses)]
    return float(losses[-tail:].mean()) if losses.size else float("nan")


@dataclass
class CallTimes:
    """Wall time of the first call and the median of the following ones (seconds)."""

    first_s: float
    median_s: float
    result: Any = field(repr=False, default=None)


def time_calls(fn: Callable[[], Any], repeats: int = 5) -> CallTimes:
    """Call ``fn`` once (warm-up, result kept) and ``repeats`` more times; median of the repeats."""
    t0 = time.perf_counter()
    result = fn()
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return CallTimes(first, statistics.median(times) if times else first, result)

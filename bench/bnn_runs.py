"""bnn_ppl's own fits: every registered engine (and the backends it declares), timed the same way."""

from __future__ import annotations

import math
import time
from typing import Any

import bnn_ppl as bp
from bench.measure import FitRow, PeakMemory, StepClock, classification_metrics, tail_mean, time_calls
from bench.workloads import Workload

__all__ = ["engine_configs", "fit_bnn", "default_engine"]

#: The engine that ``fit`` runs with a Python loop (one compiled step per iteration).
PYTHON_LOOP_ENGINE = "pymc"


def default_engine() -> str:
    """The engine ``bnn_ppl.fit(engine="auto")`` picks in this environment."""
    from bnn_ppl.inference.engines import resolve_engine

    return resolve_engine("auto")


def engine_configs() -> list[tuple[str, str | None]]:
    """(engine, backend) pairs to benchmark, read from the engine registry at run time.

    Every registered engine runs with its default backend (``None``); an engine class that
    declares a ``backends`` tuple (e.g. ``("numba", "jax")``) runs once per backend instead.
    """
    from bnn_ppl.inference.engines import ENGINES
    from bnn_ppl.inference.fit import BACKENDS

    configs: list[tuple[str, str | None]] = []
    for name in ENGINES.names():
        declared = getattr(ENGINES.get(name), "backends", None) or (None,)
        configs.extend((name, b) for b in declared if b is None or b in BACKENDS)
    return configs


def fit_bnn(workload: Workload, engine: str, backend: str | None = None, seed: int = 0) -> tuple[FitRow, Any]:
    """``build_model`` + ``fit`` with one engine/backend, then test metrics from the default predictor.

    The Python-loop engine runs ``workload.pymc_engine_steps``, the others ``workload.steps``.
    The steady rate comes from a :class:`StepClock` callback, which engines call after every
    step (Python loop) or every compiled chunk, so the first (compiling) step or chunk is
    excluded. With a single chunk the rate falls back to the engine's own
    ``timings["steady_steps_per_s"]``, else to ``n_steps / timings["fit_s"]``, which includes
    compilation (said in ``notes``).
    """
    python_loop = engine == PYTHON_LOOP_ENGINE
    n = workload.pymc_engine_steps if python_loop else workload.steps
    clock = StepClock()
    with PeakMemory() as mem:
        t0 = time.perf_counter()
        built = bp.build_model(workload.spec, workload.X_train, workload.y_train, batch_size=workload.batch_size)
        # mean-field, like every baseline it is compared with (pm.fit advi, NumPyro AutoNormal, the
        # hand-written ADVI); method="auto" would fit small nets full-rank
        result = bp.fit(built, n, method="advi", engine=engine, backend=backend, random_seed=seed, progressbar=False,
                        callbacks=(clock,))
        wall = time.perf_counter() - t0
    notes = [f"reduced to {n} steps (Python loop)"] if python_loop else []
    rate = clock.steps_per_s
    if not math.isfinite(rate):
        rate = result.timings.get("steady_steps_per_s", math.nan)
        notes.append("one compiled chunk: steps/s as the engine estimates it")
    if not math.isfinite(rate):
        rate = result.n_steps / result.timings["fit_s"]
        notes[-1] = "one compiled chunk: steps/s includes compilation"
    if engine == default_engine() and backend is None:
        notes.append("default engine")
    predictor = result.predictor()
    timed = time_calls(lambda: predictor.sample(workload.X_test, draws=workload.eval_draws, random_seed=seed),
                       repeats=1)
    accuracy, nll = classification_metrics(timed.result, workload.y_test)
    row = FitRow(
        workload=workload.name, runner="bnn_ppl", engine=result.engine, backend=str(result.backend),
        n_steps=result.n_steps, dtype=str(result.params()["mu"].dtype), steps_per_s=rate,
        setup_compile_s=wall - result.n_steps / rate, fit_wall_s=wall, final_neg_elbo=tail_mean(result.losses),
        test_accuracy=accuracy, test_nll=nll, predict_s=timed.median_s, peak_mem_mb=mem.peak_mb,
        notes="; ".join(notes),
    )
    return row, result

"""Posterior-predictive timings on one workload (issue 3: 500 draws x 500 rows on moons).

Routes: the notebook's ``approx.sample_node`` compiled with PyTensor defaults (the reference),
the ``approx.sample`` + ``sample_posterior_predictive`` route, and bnn_ppl's predictor kinds
(``sample_node``, ``batched``) on the numba and JAX backends.
"""

from __future__ import annotations

import importlib.util
import time
import traceback
from collections.abc import Callable
from typing import Any

from bench.baselines import PmFitted, default_linker, compile_sample_node, spp_predict
from bench.measure import PredictRow, time_calls

__all__ = ["predictive_rows", "PREDICT_BACKENDS", "SAMPLE_NODE_ROUTE", "SPP_ROUTE"]

SAMPLE_NODE_ROUTE = "pm approx.sample_node (default compile)"
SPP_ROUTE = "pm approx.sample + sample_posterior_predictive"
#: Backends of bnn_ppl's predictors that are timed (JAX only when installed).
PREDICT_BACKENDS = ("numba", "jax")


def _timed_route(route: str, backend: str, draws: int, rows: int, build: Callable[[], Callable[[], Any]],
                 repeats: int, compiles_once: bool = True) -> PredictRow:
    """Time ``build()`` (compilation) and calls of the function it returns.

    ``compile_s`` is the build time plus the first call's excess over a steady call (JAX
    compiles on the first call); ``predict_s`` is the median of ``repeats`` later calls.
    """
    row = PredictRow(route=route, backend=backend, draws=draws, rows=rows)
    try:
        t0 = time.perf_counter()
        fn = build()
        built_s = time.perf_counter() - t0
        timed = time_calls(fn, repeats=repeats)
        row.predict_s = timed.median_s
        if compiles_once:
            row.compile_s = built_s + max(0.0, timed.first_s - timed.median_s)
        else:
            row.notes = "compiles on every call"
    except Exception as err:  # noqa: BLE001 - one failing route must not stop the benchmark
        row.error = "".join(traceback.format_exception_only(err)).strip()
    return row


def predictive_rows(pm_fitted: PmFitted | None, bnn_result: Any, X: Any, *, draws: int = 500, seed: int = 0,
                    repeats: int = 5, spp_repeats: int = 1) -> list[PredictRow]:
    """Time every predictive route on ``draws`` x ``len(X)``; speedups are added by the report."""
    rows_n = int(X.shape[0])
    out: list[PredictRow] = []
    if pm_fitted is not None:
        X_pm = X.astype(pm_fitted.dtype)

        def build_sample_node() -> Callable[[], Any]:
            fn = compile_sample_node(pm_fitted.approx, pm_fitted.forward)
            return lambda: fn(X_pm, draws)

        out.append(_timed_route(SAMPLE_NODE_ROUTE, default_linker(), draws, rows_n, build_sample_node, repeats))
        out.append(_timed_route(SPP_ROUTE, default_linker(), draws, rows_n,
                                lambda: lambda: spp_predict(pm_fitted, X_pm, draws, seed), spp_repeats,
                                compiles_once=False))
    if bnn_result is not None:
        from bnn_ppl.predictive import PREDICTOR_KINDS

        backends = [b for b in PREDICT_BACKENDS if b != "jax" or importlib.util.find_spec("jax")]
        for kind in (k for k in PREDICTOR_KINDS if k != "auto"):
            for backend in backends:

                def build(kind: str = kind, backend: str = backend) -> Callable[[], Any]:
                    predictor = bnn_result.predictor(kind=kind, backend=backend)
                    return lambda: predictor.sample(X, draws=draws, random_seed=seed)

                route = f"bnn_ppl predictor kind={kind!r} (engine {bnn_result.engine})"
                out.append(_timed_route(route, backend, draws, rows_n, build, repeats))
    return out

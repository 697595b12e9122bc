"""``python -m bench.run [--quick] [--out bench/results]``: the whole benchmark in one process and one run.

For each workload: ``pm.fit`` with its defaults, every bnn_ppl engine in the registry (and the
backends each declares), and NumPyro SVI when installed; on moons also every posterior-
predictive route; then the time to first result in fresh subprocesses (cold and warm cache).
Ratios are computed against the baselines measured in this same run. Writes
``results.json`` and ``results.md`` into ``--out``.

Precision follows PyTensor's ``floatX`` (and JAX's x64 flag, which importing PyMC's JAX
bridge turns on under float64); for float32 run ``PYTENSOR_FLAGS=floatX=float32 python -m
bench.run``. The ``dtype`` column says what each runner really used.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import importlib.metadata
import os
import platform
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from bench.baselines import fit_numpyro, fit_pm_default, numpyro_available
from bench.bnn_runs import default_engine, engine_configs, fit_bnn
from bench.measure import FitRow
from bench.predictive import predictive_rows
from bench.report import add_fit_ratios, add_predict_speedups, write_results
from bench.ttfr import TARGETS, measure_ttfr
from bench.workloads import DEFAULT_WORKLOADS, WORKLOADS, Workload, make_workloads

__all__ = ["run_benchmark", "main"]

PREDICT_WORKLOAD = "moons"
_PACKAGES = ("bnn_ppl", "pymc", "pytensor", "numpy", "numba", "jax", "numpyro", "arviz")


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _guarded(template: FitRow, fn: Callable[[], tuple[FitRow, Any]]) -> tuple[FitRow, Any]:
    """Run one fit; a failure becomes a row with ``error`` set instead of stopping the run."""
    try:
        return fn()
    except Exception as err:  # noqa: BLE001 - one failing runner must not stop the benchmark
        template.error = "".join(traceback.format_exception_only(err)).strip()[-500:]
        return template, None


def _describe(row: FitRow) -> str:
    if row.error:
        return f"ERROR {row.error}"
    return (f"{row.steps_per_s:,.0f} steps/s, setup+compile {row.setup_compile_s:.1f} s, "
            f"-ELBO {row.final_neg_elbo:.1f}, acc {row.test_accuracy:.3f}")


def _meta(quick: bool, argv: Sequence[str] | None) -> dict[str, Any]:
    import pytensor

    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=os.path.dirname(__file__), timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {
        "command": " ".join(["python -m bench.run", *(argv if argv is not None else sys.argv[1:])]),
        "quick": quick, "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M"), "git_commit": commit,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()}, Python {platform.python_version()}",
        "versions": versions, "floatX": str(pytensor.config.floatX), "default_engine": default_engine(),
    }


def _bench_workload(w: Workload, seed: int, configs: list[tuple[str, str | None]], use_numpyro: bool,
                    predict_draws: int, predict_repeats: int, results: dict[str, Any]) -> None:
    _log(f"[{w.name}] {w.description}")
    rows: list[FitRow] = []
    row, pm_fitted = _guarded(FitRow(w.name, "pm.fit default", "pm.fit advi", ""),
                              lambda: fit_pm_default(w, seed))
    _log(f"[{w.name}] pm.fit default ({row.n_steps} steps): {_describe(row)}")
    rows.append(row)
    predict_result = None  # the default engine's fit (else the first that worked) feeds the predictive
    for engine, backend in configs:
        row, result = _guarded(FitRow(w.name, "bnn_ppl", engine, str(backend)),
                               lambda e=engine, b=backend: fit_bnn(w, e, b, seed))
        _log(f"[{w.name}] bnn_ppl engine={engine} backend={backend} ({row.n_steps} steps): {_describe(row)}")
        rows.append(row)
        if result is not None and (predict_result is None or (engine == default_engine() and backend is None)):
            predict_result = result
    if use_numpyro:
        row, _ = _guarded(FitRow(w.name, "numpyro", "SVI AutoNormal", "jax"), lambda: (fit_numpyro(w, seed), None))
        _log(f"[{w.name}] numpyro ({row.n_steps} steps): {_describe(row)}")
        rows.append(row)
    add_fit_ratios(rows)
    results["fits"] += [dataclasses.asdict(r) for r in rows]
    if w.name == PREDICT_WORKLOAD and predict_draws > 0:
        X = w.X_test
        _log(f"[{w.name}] posterior predictive {predict_draws} draws x {X.shape[0]} rows")
        pred = predictive_rows(pm_fitted, predict_result, X, draws=predict_draws, seed=seed, repeats=predict_repeats)
        add_predict_speedups(pred)
        results["predict"] = [dataclasses.asdict(r) for r in pred]
        results["predict_workload"] = w.description


def run_benchmark(
    workloads: Sequence[Workload],
    *,
    seed: int = 0,
    engines: Sequence[str] | None = None,
    numpyro: bool = True,
    predict_draws: int = 500,
    predict_repeats: int = 5,
    ttfr_targets: Sequence[str] = TARGETS,
    ttfr_steps: int = 30_000,
    ttfr_fresh_cache: bool = True,
    quick: bool = False,
    argv: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Run every runner on every workload in this process; return the results dict.

    Parameters
    ----------
    workloads : sequence of Workload
        From :func:`bench.workloads.make_workloads` (or custom ones).
    seed : int
        Seeds every fit and every predictive draw.
    engines : sequence of str, optional
        bnn_ppl engines to run (default: every registered engine, read at run time).
    numpyro : bool
        Include NumPyro SVI (skipped when it is not installed).
    predict_draws : int
        Draws for the predictive routes on the moons workload (0 skips them).
    predict_repeats : int
        Warm calls whose median is reported per predictive route.
    ttfr_targets : sequence of {"bnn_ppl", "pm.fit"}
        Time-to-first-result targets (empty skips it).
    ttfr_steps : int
        Fit steps in the time-to-first-result runs.
    ttfr_fresh_cache : bool
        Cold + warm runs on a fresh cache folder, or one run on the machine's caches.

    Returns
    -------
    dict
        ``meta``, ``fits`` (rows of :class:`~bench.measure.FitRow`), ``predict`` (rows of
        :class:`~bench.measure.PredictRow`) and ``ttfr`` (dicts).
    """
    t0 = time.perf_counter()
    results: dict[str, Any] = {"meta": _meta(quick, argv), "fits": [], "predict": [], "ttfr": []}
    configs = [(e, b) for e, b in engine_configs() if engines is None or e in engines]
    unknown = sorted(set(engines or ()) - {e for e, _ in engine_configs()})
    if unknown:
        raise ValueError(f"Unknown engine(s) {unknown}; registered: {sorted({e for e, _ in engine_configs()})}.")
    use_numpyro = numpyro and numpyro_available()
    if numpyro and not use_numpyro:
        _log("numpyro is not installed: its rows are skipped (pip install numpyro)")
    for w in workloads:
        _bench_workload(w, seed, configs, use_numpyro, predict_draws, predict_repeats, results)
    if ttfr_targets:
        _log(f"time to first result: {list(ttfr_targets)}, {ttfr_steps} steps, fresh cache={ttfr_fresh_cache}")
        results["ttfr"] = measure_ttfr(tuple(ttfr_targets), steps=ttfr_steps, seed=seed,
                                       draws=predict_draws or 500, fresh_cache=ttfr_fresh_cache)
    if "jax" in sys.modules:
        results["meta"]["jax_enable_x64"] = bool(sys.modules["jax"].config.jax_enable_x64)
    results["meta"]["total_s"] = time.perf_counter() - t0
    return results


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="scaled-down smoke run (fewer rows and steps)")
    parser.add_argument("--out", default="bench/results", help="folder for results.json and results.md")
    parser.add_argument("--workloads", default=",".join(DEFAULT_WORKLOADS),
                        help=f"comma-separated, from {sorted(WORKLOADS)}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--engines", default=None, help="comma-separated bnn_ppl engines (default: all registered)")
    parser.add_argument("--no-numpyro", action="store_true", help="skip NumPyro SVI")
    parser.add_argument("--no-ttfr", action="store_true", help="skip the time-to-first-result subprocesses")
    args = parser.parse_args(argv)
    workloads = make_workloads([n.strip() for n in args.workloads.split(",") if n.strip()], quick=args.quick)
    results = run_benchmark(
        workloads, seed=args.seed, numpyro=not args.no_numpyro, quick=args.quick, argv=argv,
        engines=None if args.engines is None else [e.strip() for e in args.engines.split(",") if e.strip()],
        ttfr_targets=() if args.no_ttfr else TARGETS, ttfr_steps=2_000 if args.quick else 30_000,
    )
    json_path, md_path = write_results(results, args.out)
    _log(f"wrote {json_path} and {md_path} ({results['meta']['total_s']:.0f} s)")


if __name__ == "__main__":
    main()

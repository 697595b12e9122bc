"""Time to first result: a fresh process imports, builds moons, fits and predicts once.

The parent (:func:`measure_ttfr`) runs ``python -m bench.ttfr`` in subprocesses. With
``fresh_cache=True`` it points PyTensor's ``base_compiledir`` (which also holds PyTensor's
numba cache), ``NUMBA_CACHE_DIR`` and ``XDG_CACHE_HOME`` (and ``JAX_COMPILATION_CACHE_DIR``
when it is set) at a new temporary folder, runs once **cold** and once more **warm** with the
same folder, then deletes it. ``fresh_cache=False`` makes a single run with the caches
already on this machine.
"""

from __future__ import annotations

import time

_T0 = time.perf_counter()  # before any heavy import: the child's clock starts here

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

__all__ = ["TARGETS", "measure_ttfr", "main"]

#: What a child can time: bnn_ppl's defaults, or the notebook route with ``pm.fit`` defaults.
TARGETS = ("bnn_ppl", "pm.fit")
_ROOT = Path(__file__).resolve().parents[1]


def _child(target: str, steps: int, draws: int, seed: int) -> dict[str, Any]:
    t = time.perf_counter()
    if target == "bnn_ppl":
        import bnn_ppl as bp
    else:
        import pymc as pm
    import_s = time.perf_counter() - t
    from bench.measure import classification_metrics
    from bench.workloads import make_workloads

    t = time.perf_counter()
    (w,) = make_workloads(["moons"], quick=False)
    data_s = time.perf_counter() - t
    t = time.perf_counter()
    if target == "bnn_ppl":
        built = bp.build_model(w.spec, w.X_train, w.y_train, batch_size=w.batch_size)
        result = bp.fit(built, steps, random_seed=seed, progressbar=False)
        fit_s = time.perf_counter() - t
        t = time.perf_counter()
        proba = result.predictor().sample(w.X_test, draws=draws, random_seed=seed)
        engine = f"{result.engine} ({result.backend})"
    else:
        from bench.baselines import compile_sample_node, plain_pymc_model

        model, forward = plain_pymc_model(w, seed)
        approx = pm.fit(steps, method="advi", model=model, random_seed=seed, progressbar=False)
        fit_s = time.perf_counter() - t
        t = time.perf_counter()
        proba = compile_sample_node(approx, forward)(pm.pytensorf.floatX(w.X_test), draws)
        engine = "pm.fit advi"
    predict_s = time.perf_counter() - t
    accuracy, _ = classification_metrics(proba, w.y_test)
    return {
        "target": target, "engine": engine, "steps": steps, "draws": draws, "import_s": import_s,
        "data_s": data_s, "build_fit_s": fit_s, "predict_s": predict_s,
        "ttfr_s": time.perf_counter() - _T0, "test_accuracy": accuracy,
    }


def _cache_env(folder: str) -> dict[str, str]:
    env = dict(os.environ)
    flags = [f for f in env.get("PYTENSOR_FLAGS", "").split(",") if f and not f.startswith("base_compiledir=")]
    env["PYTENSOR_FLAGS"] = ",".join([*flags, f"base_compiledir={folder}/pytensor"])
    env["NUMBA_CACHE_DIR"] = f"{folder}/numba"
    env["XDG_CACHE_HOME"] = f"{folder}/xdg"
    if "JAX_COMPILATION_CACHE_DIR" in env:
        env["JAX_COMPILATION_CACHE_DIR"] = f"{folder}/jax"
    return env


def _run_child(target: str, steps: int, draws: int, seed: int, env: dict[str, str], cache: str,
               timeout: float) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "bench.ttfr", "--target", target, "--steps", str(steps), "--draws", str(draws),
           "--seed", str(seed)]
    row: dict[str, Any] = {"target": target, "cache": cache, "steps": steps, "draws": draws}
    t = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=_ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        row["error"] = f"timed out after {timeout:.0f} s"
        return row
    row["wall_s"] = time.perf_counter() - t
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        row["error"] = f"exit code {proc.returncode}: {proc.stderr.strip()[-800:]}"
        return row
    row.update(json.loads(lines[-1]))
    return row


def measure_ttfr(targets: tuple[str, ...] = TARGETS, *, steps: int = 30_000, draws: int = 500, seed: int = 0,
                 fresh_cache: bool = True, timeout: float = 1800.0) -> list[dict[str, Any]]:
    """Time-to-first-result rows: per target, cold then warm (``fresh_cache``) or one run on the existing caches.

    Each row has ``import_s``, ``data_s``, ``build_fit_s``, ``predict_s``, ``ttfr_s`` (from the
    child's start to its first prediction) and ``wall_s`` (the whole subprocess, interpreter
    start included), or ``error``.
    """
    rows = []
    for target in targets:
        if fresh_cache:
            with tempfile.TemporaryDirectory(prefix="bnn_ppl_bench_cache_") as folder:
                env = _cache_env(folder)
                for cache in ("cold", "warm"):
                    rows.append(_run_child(target, steps, draws, seed, env, cache, timeout))
        else:
            rows.append(_run_child(target, steps, draws, seed, dict(os.environ), "existing", timeout))
    return rows


def main(argv: list[str] | None = None) -> None:
    """Child entry point: prints one JSON line with the timings."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", choices=TARGETS, default="bnn_ppl")
    parser.add_argument("--steps", type=int, default=30_000)
    parser.add_argument("--draws", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(json.dumps(_child(args.target, args.steps, args.draws, args.seed)))


if __name__ == "__main__":
    main()

"""JAX engine steps/s on the large workloads (run on a GPU machine; `--platform cpu` for the CPU).

Usage: ``PYTENSOR_FLAGS=floatX=float32 python -m bench.gpu [--steps N] [--out FILE]``.
Prints one JSON row per workload: steady-state steps/s (first chunk, which compiles, excluded),
compile s, final -ELBO, test accuracy, and the JAX device.

On the lent GPU machine (JAX with CUDA, numpy, numba, scipy, scikit-learn, xarray present) carry
these as wheels for Python 3.12: pymc, pytensor, arviz, arviz-base, arviz-stats, arviz-plots,
better-optimize, cachetools<7 (cachetools 8 broke PyMC 6.4's ``cachedmethod`` use), tomli-w,
xarray-einstats; install them with ``--no-deps --target`` and put the target on PYTHONPATH.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

import bnn_ppl as bp
from bench.workloads import make_workloads


def run(name: str, steps: int, seed: int = 0) -> dict:
    (w,) = make_workloads([name])
    built = bp.build_model(w.spec, w.X_train, w.y_train, batch_size=w.batch_size)
    t0 = time.perf_counter()
    result = bp.fit(built, steps, method="advi", engine="jax", random_seed=seed, progressbar=False)
    total = time.perf_counter() - t0
    proba = result.predictor(backend="jax").predict_proba(w.X_test, draws=w.eval_draws, random_seed=seed)
    return {
        "workload": name,
        "architecture": w.architecture,
        "device": result.backend,
        "dtype": str(built.X_data.get_value().dtype),
        "steps": steps,
        "steps_per_s": round(result.timings["steady_steps_per_s"], 1),
        "compile_s": round(result.timings["compile_s"], 2),
        "fit_total_s": round(total, 2),
        "final_neg_elbo": round(result.final_loss, 1),
        "test_accuracy": round(float(np.mean(proba.argmax(1) == w.y_test)), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--workloads", nargs="+", default=["synthetic784", "synthetic784_wide"])
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    rows = [run(name, args.steps) for name in args.workloads]
    for row in rows:
        print(json.dumps(row), flush=True)
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(rows, fh, indent=2)


if __name__ == "__main__":
    main()

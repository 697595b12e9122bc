"""``python -m bench.speed``: bnn_ppl's ADVI step against the strongest baselines, interleaved.

Every runner fits the same workload (data, network, priors, steps) and reports steady steps/s
(compilation excluded), the final -ELBO (mean of the last 1,000 steps, full-data scale) and the
test NLL after the same number of steps:

- ``pm.fit default``: ``pm.fit(n, method="advi")`` on the seed notebook's plain PyMC model;
- ``pm.fit adam``: the same with ``obj_optimizer=pm.adam(learning_rate=0.01)`` (PyMC tuned);
- ``numpyro``: ``jax.jit(lax.scan(svi.update))``, Adam(0.01), ``randint`` minibatches, with
  ``AutoNormal`` and with ``AutoDiagonalNormal`` (one flat vector: NumPyro's faster guide);
- ``limit``: the hand-written mean-field ADVI in JAX (:mod:`bench.limit`), noise drawn in the
  step and per chunk (the faster of the two is the limit);
- ``limit closed-form KL``: the same with the closed-form Gaussian KL;
- ``limit features-first``: the limit with its forward pass on the batch stored features
  first (``W.T @ h.T``), what bnn_ppl's JAX engine does for narrow networks on CPU;
- ``bnn_ppl``: ``bp.fit(built, n, method="advi")`` with the default engine; ``bnn_ppl
  closed-form KL``: with ``elbo=bp.ELBO(kl="closed_form")``; ``bnn_ppl rows first``: the
  default with the features-first forward pass switched off (PyMC's graph throughout);
  ``bnn_ppl one core``: the default without drawing the next chunk's noise on a second thread
  (``jax_engine.PREFETCH``; the limit and NumPyro draw theirs on the core that runs the step).

Runners run interleaved (A B C ... A B C ..., ``--repeats`` rounds) and the table reports
medians: ratios between programs move by tens of percent with background load, and
interleaving spreads that load over all of them. Two configurations, each in its own process:
``float32, 1 thread`` (BLAS and XLA pinned to one thread) and ``defaults`` (float64, threads as
they come, as a user runs it); the defaults also time a whole ``bp.fit`` call (setup included,
after one warm-up fit) against a whole ``pm.fit`` call.

Writes ``speed_<config>.json`` and ``speed.md`` into ``--out``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

CONFIGS = {
    "float32-1thread": {
        "PYTENSOR_FLAGS": "floatX=float32", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1", "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
    },
    "defaults": {},
}
RUNNERS = ("pm.fit default", "pm.fit adam", "numpyro AutoNormal", "numpyro AutoDiagonalNormal", "limit", "limit closed-form KL",
           "limit features-first", "bnn_ppl", "bnn_ppl closed-form KL", "bnn_ppl rows first", "bnn_ppl one core")


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _nll(draws: np.ndarray, y: np.ndarray) -> float:
    from bench.measure import classification_metrics

    return classification_metrics(draws, y)[1]


class _Bnn:
    def __init__(self, workload: Any, elbo: Any, features_first: bool = True, draw_ahead: bool = True) -> None:
        import bnn_ppl as bp

        self.workload, self.elbo, self.features_first, self.draw_ahead = workload, elbo, features_first, draw_ahead
        self.built = bp.build_model(workload.spec, workload.X_train, workload.y_train, batch_size=workload.batch_size)
        self._fit(min(workload.steps, 2000), 99, ())

    def _fit(self, steps: int, seed: int, callbacks: tuple) -> Any:
        import bnn_ppl as bp
        from bnn_ppl.inference.engines import features_first as ff
        from bnn_ppl.inference.engines import jax_engine

        saved, saved_ahead = ff.ROWS_PER_UNIT, jax_engine.PREFETCH
        ff.ROWS_PER_UNIT = saved if self.features_first else math.inf
        jax_engine.PREFETCH = saved_ahead and self.draw_ahead
        try:
            return bp.fit(self.built, steps, method="advi", elbo=self.elbo, random_seed=seed, progressbar=False,
                          callbacks=callbacks)
        finally:
            ff.ROWS_PER_UNIT, jax_engine.PREFETCH = saved, saved_ahead

    def run(self, seed: int) -> dict[str, Any]:
        from bench.measure import StepClock

        clock = StepClock()
        t0 = time.perf_counter()
        result = self._fit(self.workload.steps, seed, (clock,))
        wall = time.perf_counter() - t0
        proba = result.predictor().sample(self.workload.X_test, draws=self.workload.eval_draws, random_seed=seed)
        return {"steps_per_s": clock.steps_per_s, "final_neg_elbo": float(np.mean(result.losses[-1000:])),
                "test_nll": _nll(proba, self.workload.y_test), "wall_s": wall, "dtype": str(result.params()["mu"].dtype)}


def _median_ms(fn: Any, repeats: int = 15) -> float:
    fn()  # compile / warm
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def predict_times(workload: Any, draws: int = 500) -> dict[str, float]:
    """Posterior predictive, ``draws`` x the test rows: bnn_ppl's compiled predictor against a
    jitted ``jax.vmap`` of the same forward pass (the hand-written limit's, drawing its own
    posterior samples), at the parameters of a short fit; alternated, median ms of each."""
    import jax

    import bnn_ppl as bp
    from bench.limit import build_limit

    built = bp.build_model(workload.spec, workload.X_train, workload.y_train, batch_size=workload.batch_size)
    result = bp.fit(built, 2000, method="advi", random_seed=0, progressbar=False)
    predictor = result.predictor()
    limit = build_limit(dataclasses.replace(workload, eval_draws=draws), dtype=str(result.params()["mu"].dtype))
    X_test = np.asarray(workload.X_test, dtype=limit.state[0][0].dtype)
    key = jax.random.key(0)
    out: dict[str, list[float]] = {"bnn_ppl predictor().sample": [], "jitted jax.vmap forward": []}
    for _ in range(3):
        out["bnn_ppl predictor().sample"].append(
            _median_ms(lambda: predictor.sample(workload.X_test, draws=draws, random_seed=0)))
        out["jitted jax.vmap forward"].append(
            _median_ms(lambda: jax.block_until_ready(limit.predict(limit.state[0], key, X_test))))
    return {name: statistics.median(values) for name, values in out.items()}


class _Limit:
    def __init__(self, workload: Any, kl: str, dtype: str, layout: str = "rows") -> None:
        from bench.limit import build_limit

        self.workload = workload
        self.variants = [build_limit(workload, noise=noise, kl=kl, dtype=dtype, layout=layout)
                         for noise in ("step", "chunk")]
        for limit in self.variants:
            limit.fit(workload.steps)  # compile

    def run(self, seed: int) -> dict[str, Any]:
        import jax

        best = None
        for limit in self.variants:
            rate, losses = limit.fit(self.workload.steps, seed=seed)
            if best is None or rate > best[0]:
                best = (rate, losses, limit)
        rate, losses, limit = best
        proba = np.asarray(limit.predict(limit.final_state[0], jax.random.key(seed), np.asarray(self.workload.X_test, dtype=limit.state[0][0].dtype)))
        return {"steps_per_s": rate, "final_neg_elbo": float(np.mean(losses[-1000:])),
                "test_nll": _nll(proba, self.workload.y_test), "variant": limit.variant,
                "dtype": str(limit.state[0][0].dtype)}


def _row_of(fit_row: Any) -> dict[str, Any]:
    return {"steps_per_s": fit_row.steps_per_s, "final_neg_elbo": fit_row.final_neg_elbo, "test_nll": fit_row.test_nll,
            "wall_s": fit_row.fit_wall_s, "dtype": fit_row.dtype, "error": fit_row.error}


def run_config(config: str, workloads: list[str], repeats: int, quick: bool, partial: Path | None = None) -> dict[str, Any]:
    """Run every runner on every workload, interleaved; in the current process (its env set by the caller)."""
    from bnn_ppl.array_ops import pymc_jax_bridge

    pymc_jax_bridge()  # JAX's x64 flag by floatX, set first so no runner retraces later (and one CPU device)
    import pytensor

    import bnn_ppl as bp
    from bench.baselines import fit_numpyro, fit_pm_default
    from bench.workloads import make_workloads

    dtype = pytensor.config.floatX
    out: dict[str, Any] = {"config": config, "floatX": dtype, "workloads": {}}
    for workload in make_workloads(workloads, quick=quick):
        # the same steps for every runner (the 784 workload: 1,000, pm.fit's Python-driven loop is slow)
        steps = workload.steps if workload.name != "synthetic784" else min(workload.steps, 1000)
        workload = dataclasses.replace(workload, steps=steps, pm_fit_steps=steps)
        _log(f"[{config}] {workload.description}: preparing")
        prepared = {
            "limit": _Limit(workload, "mc", dtype),
            "limit closed-form KL": _Limit(workload, "closed_form", dtype),
            "bnn_ppl": _Bnn(workload, bp.ELBO()),
            "bnn_ppl closed-form KL": _Bnn(workload, bp.ELBO(kl="closed_form")),
            "limit features-first": _Limit(workload, "mc", dtype, layout="features"),
            "bnn_ppl rows first": _Bnn(workload, bp.ELBO(), features_first=False),
            "bnn_ppl one core": _Bnn(workload, bp.ELBO(), draw_ahead=False),
        }
        calls = {
            "pm.fit default": lambda seed: _row_of(fit_pm_default(workload, seed, workload.pm_fit_steps)[0]),
            "pm.fit adam": lambda seed: _row_of(fit_pm_default(workload, seed, workload.pm_fit_steps, optimizer="adam")[0]),
            "numpyro AutoNormal": lambda seed: _row_of(fit_numpyro(workload, seed)),
            "numpyro AutoDiagonalNormal": lambda seed: _row_of(fit_numpyro(workload, seed, guide="AutoDiagonalNormal")),
            **{name: runner.run for name, runner in prepared.items()},
        }
        rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in RUNNERS}
        for r in range(repeats):
            for name in RUNNERS:
                try:
                    rounds[name].append(calls[name](r))
                except Exception as err:  # noqa: BLE001 - a failing runner (pm.fit diverging) is a table entry
                    message = "".join(traceback.format_exception_only(err)).strip().splitlines()[0][:200]
                    rounds[name].append({"steps_per_s": math.nan, "final_neg_elbo": math.nan, "test_nll": math.nan,
                                         "error": message})
                _log(f"[{config}] {workload.name} round {r} {name}: {rounds[name][-1]['steps_per_s']:,.0f} steps/s")
        table = {}
        for name, results in rounds.items():
            rates = [x["steps_per_s"] for x in results]
            finite = lambda key: [x[key] for x in results if math.isfinite(x[key])]  # noqa: E731
            table[name] = {
                "steps_per_s": statistics.median(finite("steps_per_s")) if finite("steps_per_s") else math.nan, "rates": [round(x, 1) for x in rates],
                "final_neg_elbo": statistics.median(finite("final_neg_elbo")) if finite("final_neg_elbo") else math.nan,
                "test_nll": statistics.median(finite("test_nll")) if finite("test_nll") else math.nan,
                "wall_s": statistics.median(x.get("wall_s", float("nan")) for x in results),
                "dtype": results[0].get("dtype"), "steps": workload.pm_fit_steps if name.startswith("pm.fit") else workload.steps,
                "errors": sorted({x["error"] for x in results if x.get("error")}),
            }
        out["workloads"][workload.name] = {"description": workload.description, "runners": table}
        if workload.name in ("moons", "digits"):
            out["workloads"][workload.name]["predict_ms"] = predict_times(workload)
            _log(f"[{config}] {workload.name} predictive: {out['workloads'][workload.name]['predict_ms']}")
        if partial is not None:  # what is measured so far survives a failure later in the run
            partial.write_text(json.dumps(out, indent=1))
    return out


def to_markdown(results: list[dict[str, Any]]) -> str:
    lines = []
    for res in results:
        lines.append(f"### {res['config']} (floatX {res['floatX']})\n")
        lines.append("| workload | runner | steps | steps/s (median) | rounds | x limit | x pm.fit default | final -ELBO | "
                     "test NLL | error |")
        lines.append("|---|---|---:|---:|---|---:|---:|---:|---:|---|")
        for name, w in res["workloads"].items():
            t = w["runners"]
            limit, pm_default = t["limit"]["steps_per_s"], t["pm.fit default"]["steps_per_s"]
            for runner, row in t.items():
                rate = row["steps_per_s"]
                if not math.isfinite(rate):
                    lines.append(f"| {name} | {runner} | {row['steps']:,} | – | – | – | – | – | – | "
                                 f"{'; '.join(row.get('errors', []))[:120]} |")
                    continue
                vs_pm = f"{rate / pm_default:.1f}" if math.isfinite(pm_default) else "–"
                lines.append(
                    f"| {name} | {runner} | {row['steps']:,} | {rate:,.0f} | {' / '.join(f'{x:,.0f}' for x in row['rates'])} | "
                    f"{rate / limit:.2f} | {vs_pm} | {row['final_neg_elbo']:,.1f} | {row['test_nll']:.3f} | |")
        lines.append("")
        lines.append("| workload | whole call (after a warm-up fit) | wall s (median) | x pm.fit default |")
        lines.append("|---|---|---:|---:|")
        for name, w in res["workloads"].items():
            t = w["runners"]
            base = t["pm.fit default"].get("wall_s", math.nan)
            for runner in ("pm.fit default", "pm.fit adam", "bnn_ppl", "bnn_ppl closed-form KL", "bnn_ppl rows first", "bnn_ppl one core"):
                wall = t[runner].get("wall_s", math.nan)
                if math.isfinite(wall):
                    ratio = f"{base / wall:.1f}x" if math.isfinite(base) else "–"  # pm.fit failed: no ratio
                    lines.append(f"| {name} | {runner} | {wall:.2f} | {ratio} |")
        lines.append("")
        predict = {name: w["predict_ms"] for name, w in res["workloads"].items() if "predict_ms" in w}
        if predict:
            lines.append("| workload | route | 500 draws x test rows, median ms | x jitted jax.vmap |")
            lines.append("|---|---|---:|---:|")
            for name, routes in predict.items():
                base = routes["jitted jax.vmap forward"]
                for route, ms in routes.items():
                    lines.append(f"| {name} | {route} | {ms:.2f} | {ms / base:.2f} |")
            lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--workloads", default="moons,digits,synthetic784")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default="bench/results")
    parser.add_argument("--in-process", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    workloads = args.workloads.split(",")
    if args.in_process:  # one configuration, env already set by the parent
        target = out / f"speed_{args.in_process}.json"
        result = run_config(args.in_process, workloads, args.repeats, args.quick, partial=target)
        target.write_text(json.dumps(result, indent=1))
        return
    results = []
    for config in args.configs.split(","):
        env = {**os.environ, **CONFIGS[config]}
        cmd = [sys.executable, "-m", "bench.speed", "--in-process", config, "--workloads", args.workloads,
               "--repeats", str(args.repeats), "--out", str(out)] + (["--quick"] if args.quick else [])
        subprocess.run(cmd, env=env, check=True)
        results.append(json.loads((out / f"speed_{config}.json").read_text()))
    text = to_markdown(results)
    (out / "speed.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()

"""``python -m bench.estimators``: the -ELBO estimator options measured before any becomes a default.

For each workload (moons 2-5-5-1 full batch, digits 64-32-10 batch 128) and estimator
(``bp.ELBO()`` = PyMC's objective; ``kl="closed_form"``; ``gradient="path"``; both;
``mc_draws=4``; and closed-form KL with ``local_reparameterization=True``), in one process, BLAS/XLA as the caller pins them:

- **gradient variance**: at the q of a default fit (``--steps`` steps, seed 0), the summed
  variance of the gradient's ``mu`` and ``rho`` parts over ``--draws`` independent estimates
  (fresh noise and, with minibatches, fresh rows), relative to the default's;
- **fits**: ``--seeds`` seeded fits of ``--steps`` steps each: steady steps/s, final -ELBO (mean
  of the last 10% of steps), and the wall time until the running mean of 500 losses first
  reaches the default's median final -ELBO (compilation excluded; ``-`` when never).

Writes ``estimators.json`` / ``estimators.md`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np

import bnn_ppl as bp
from bench.measure import StepClock
from bench.workloads import make_workloads

ESTIMATORS: dict[str, tuple[Any, int]] = {
    "default (PyMC's objective)": (bp.ELBO(), 1),
    "closed-form KL": (bp.ELBO(kl="closed_form"), 1),
    "path gradient": (bp.ELBO(gradient="path"), 1),
    "closed-form KL + path": (bp.ELBO(kl="closed_form", gradient="path"), 1),
    "mc_draws=4": (bp.ELBO(), 4),
    "closed-form KL + local reparameterization": (bp.ELBO(kl="closed_form", local_reparameterization=True), 1),
}


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def gradient_variance(result: Any, elbo: Any, mc_draws: int, draws: int, seed: int = 0) -> float:
    """Summed variance of ``draws`` independent gradient estimates at the fitted q (mean-field)."""
    import jax
    import jax.numpy as jnp
    from bnn_ppl.array_ops import pymc_jax_bridge

    get_jaxified_graph = pymc_jax_bridge().get_jaxified_graph

    from bnn_ppl.array_ops import jax_ops
    from bnn_ppl.inference.engines.objective import flat_logp

    built, family = result.built, result.family
    flat = flat_logp(built, result.posterior.layout)
    fn = get_jaxified_graph(inputs=[flat.theta, flat.x, flat.y, flat.prior_scale],
                            outputs=[flat.rest_other, flat.rows])
    prior_fn = get_jaxified_graph(inputs=[flat.prior_scale], outputs=[flat.gaussian_mu, flat.gaussian_sigma])
    X, y = jnp.asarray(flat.X), jnp.asarray(flat.y_data)
    xp = jax_ops()
    one = jnp.asarray(1.0, X.dtype)
    gaussian = (flat.gaussian_mask, *prior_fn(one))
    params = {k: jnp.asarray(v) for k, v in family.to_engine(result.posterior.values()).items()}
    batch = built.batch_size

    local = None
    if elbo.local_reparameterization:
        from bnn_ppl.inference.engines.local import local_logp, local_theta

        local = local_logp(built, flat, result.posterior.layout, get_jaxified_graph, features_first=False)

    def loss(q, key):
        k_eps, k_idx = jax.random.split(key)
        size = family.noise_size(flat.size) if local is None else local.other.size + local.n_local
        eps = jax.random.normal(k_eps, (mc_draws, size), X.dtype)
        if batch is None:
            xb, yb = X, y
        else:
            idx = jax.random.randint(k_idx, (batch,), 0, X.shape[0])
            xb, yb = X[idx], y[idx]
        if local is not None:  # pre-activations drawn per row (bnn_ppl.inference.engines.local)
            draws = [local_theta(family, xp, q, local, e) for e in eps]
            theta = q["mu"][None]
            var = family.marginal_var(xp, q)
            parts = [local.fn(th, q["mu"], var, noise, xb, yb, one) for th, noise in draws]
        else:
            theta = family.sample(xp, q, eps)
            parts = [fn(theta[s], xb, yb, one) for s in range(mc_draws)]  # (rest, rows) per draw
        loglik = sum(rows.sum() for _, rows in parts) / mc_draws
        rest = sum(r for r, _ in parts) / mc_draws
        return elbo.neg_elbo(xp, family, q, theta, loglik, rest, gaussian)

    grads = jax.jit(jax.vmap(jax.grad(loss), in_axes=(None, 0)))(params, jax.random.split(jax.random.key(seed), draws))
    return float(sum(np.var(np.asarray(g, dtype=float), axis=0).sum() for g in grads.values()))


def _time_to(losses: np.ndarray, target: float, rate: float, window: int = 500) -> float:
    running = np.convolve(losses, np.ones(window) / window, mode="valid")
    hit = np.nonzero(running <= target)[0]
    return float("nan") if hit.size == 0 else (hit[0] + window) / rate


def study(workload: Any, steps: int, seeds: int, draws: int) -> list[dict[str, Any]]:
    built = bp.build_model(workload.spec, workload.X_train, workload.y_train, batch_size=workload.batch_size)
    fits: dict[str, list[tuple[float, np.ndarray]]] = {}
    for name, (elbo, mc_draws) in ESTIMATORS.items():
        bp.fit(built, min(2000, steps), method="advi", elbo=elbo, mc_draws=mc_draws, random_seed=99,
               progressbar=False)  # compile
        runs = []
        for seed in range(seeds):
            clock = StepClock()
            result = bp.fit(built, steps, method="advi", elbo=elbo, mc_draws=mc_draws, random_seed=seed,
                            progressbar=False, callbacks=(clock,))
            runs.append((clock.steps_per_s, np.asarray(result.losses, dtype=float)))
            if seed == 0 and name.startswith("default"):
                reference_fit = result
        fits[name] = runs
        _log(f"{workload.name} {name}: {statistics.median(r for r, _ in runs):,.0f} steps/s")
    tail = max(1, steps // 10)
    target = statistics.median(float(np.mean(losses[-tail:])) for _, losses in fits[next(iter(ESTIMATORS))])
    variances = {name: gradient_variance(reference_fit, elbo, mc_draws, draws) for name, (elbo, mc_draws) in ESTIMATORS.items()}
    base_var = variances[next(iter(ESTIMATORS))]
    rows = []
    for name, runs in fits.items():
        times = [_time_to(losses, target, rate) for rate, losses in runs]
        reached = [t for t in times if np.isfinite(t)]
        rows.append({
            "workload": workload.name, "estimator": name, "steps": steps, "seeds": seeds,
            "gradient_variance_ratio": round(variances[name] / base_var, 3),
            "steps_per_s": round(statistics.median(r for r, _ in runs), 1),
            "final_neg_elbo": round(statistics.median(float(np.mean(l[-tail:])) for _, l in runs), 2),
            "target_neg_elbo": round(target, 2),
            "time_to_target_s": round(statistics.median(reached), 2) if len(reached) == len(times) else None,
            "reached": f"{len(reached)}/{len(times)}",
        })
    return rows


def to_markdown(rows: list[dict[str, Any]]) -> str:
    head = ("| workload | estimator | gradient variance (x default) | steps/s | final -ELBO (median) | "
            "time to default's final -ELBO, s (median) | seeds reaching it |\n|---|---|---:|---:|---:|---:|---:|\n")
    return head + "".join(
        f"| {r['workload']} | {r['estimator']} | {r['gradient_variance_ratio']} | {r['steps_per_s']:,.0f} | "
        f"{r['final_neg_elbo']} | {'-' if r['time_to_target_s'] is None else r['time_to_target_s']} | {r['reached']} |\n"
        for r in rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", default="moons,digits")
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--draws", type=int, default=2000)
    parser.add_argument("--out", default="bench/results")
    args = parser.parse_args(argv)
    rows = []
    for workload in make_workloads(args.workloads.split(",")):
        rows += study(workload, args.steps, args.seeds, args.draws)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "estimators.json").write_text(json.dumps(rows, indent=1))
    (out / "estimators.md").write_text(to_markdown(rows))
    print(to_markdown(rows))


if __name__ == "__main__":
    main()

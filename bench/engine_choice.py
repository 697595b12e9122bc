"""``python -m bench.engine_choice``: the JAX and numba engines on tiny networks, where steps are dispatch-bound.

For each case (features-hidden-1 tanh net, Bernoulli, full batch), both engines fit 10,000
mean-field steps twice after a warm-up fit; the table reports the faster steady rate of each
(compilation excluded) and their ratio. ``engine="auto"`` picks from this evidence.
"""

from __future__ import annotations

import numpy as np

import bnn_ppl as bp
from bench.measure import StepClock

CASES = (("2-2-1", 2, (2,), 20), ("2-5-1", 2, (5,), 200), ("2-5-5-1", 2, (5, 5), 500), ("8-16-1", 8, (16,), 2000))


def rate(built, engine: str, steps: int = 10_000) -> float:
    bp.fit(built, 2_000, method="advi", engine=engine, progressbar=False)
    rates = []
    for seed in range(2):
        clock = StepClock()
        bp.fit(built, steps, method="advi", engine=engine, random_seed=seed, progressbar=False, callbacks=(clock,))
        rates.append(clock.steps_per_s)
    return max(rates)


def main() -> None:
    rng = np.random.default_rng(0)
    print("| net | rows | parameters | jax steps/s | numba steps/s | numba / jax |\n|---|---:|---:|---:|---:|---:|")
    for name, features, hidden, rows in CASES:
        X = rng.normal(size=(rows, features))
        y = (X[:, 0] * X[:, 1] > 0).astype(int)
        spec = bp.Network([bp.Dense(h) for h in hidden] + [bp.Dense(1, "identity")], bp.Bernoulli())
        built = bp.build_model(spec, X, y)
        jax_rate, numba_rate = rate(built, "jax"), rate(built, "numba")
        print(f"| {name} | {rows} | {built.spec.n_params()} | {jax_rate:,.0f} | {numba_rate:,.0f} | "
              f"{numba_rate / jax_rate:.2f} |", flush=True)


if __name__ == "__main__":
    main()

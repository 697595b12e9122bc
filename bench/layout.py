"""Rows first against features first: the likelihood's value and gradient of a dense network in JAX.

What :mod:`bnn_ppl.inference.engines.features_first` chooses from. One jitted ``lax.scan`` per
layout over ``steps`` steps (the data are arguments of the compiled loop, as in the engine; a
minibatch is gathered with uniform random rows every step), interleaved over ``rounds`` and
reported as the median microseconds per step:

- ``rows first``: ``h @ W + b`` on ``(rows, units)``, as PyMC's graph and the hand-written limit;
- ``features first, fused transpose``: ``W.T @ h + b[:, None]`` on ``xb.T`` (XLA folds the
  transpose into the first layer's products);
- ``features first``: the same on the batch transposed into a new array
  (``optimization_barrier``), what the engine runs.

Run ``python -m bench.layout`` (``--cases big`` for 784-256-10, ``--dtypes float32``). Pin XLA to
one thread first (``XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"``)
for the figures in ``bench/LAST_RUN.md``.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

__all__ = ["CASES", "LAYOUTS", "step_times", "main"]

LAYOUTS = ("rows first", "features first, fused transpose", "features first")
#: (rows, widths, batch size or None for full batch)
CASES: dict[str, list[tuple[int, str, int | None]]] = {
    "default": [(500, "2-5-5-1", None), (200, "2-5-1", None), (500, "2-16-16-1", None), (500, "2-32-32-1", None),
                (2000, "8-16-1", None), (1000, "20-50-50-1", None), (1000, "100-100-1", None),
                (1000, "2-8-1", 64), (1000, "2-5-1", 16), (1000, "16-64-3", 64), (1437, "64-32-10", 128),
                (1000, "64-64-10", 64), (3000, "10-128-128-1", 256), (5000, "64-256-256-10", 32),
                (5000, "784-256-10", 32)],
    "big": [(20000, "784-256-10", 256)],
}


def step_times(rows: int, widths: list[int], batch: int | None, dtype: str, steps: int = 2000,
               rounds: int = 7, seed: int = 0) -> dict[str, float]:
    """Median us per step of each layout in :data:`LAYOUTS` (tanh hidden layers; Bernoulli or Categorical rows)."""
    import jax
    import jax.numpy as jnp

    rng = np.random.default_rng(seed)
    X = jnp.asarray(rng.normal(size=(rows, widths[0])), dtype)
    classes = widths[-1]
    y = jnp.asarray(rng.integers(0, max(classes, 2), rows))
    params = ([jnp.asarray(rng.normal(size=(a, b)) * 0.3, dtype) for a, b in zip(widths[:-1], widths[1:])],
              [jnp.zeros(b, dtype) for b in widths[1:]])

    def forward(layout: str, ps: Any, xb: Any) -> Any:
        weights, biases = ps
        last = len(weights) - 1
        if layout == "rows first":
            h = xb
            for i, (w, b) in enumerate(zip(weights, biases)):
                h = h @ w + b
                h = h if i == last else jnp.tanh(h)
            return h
        h = xb.T if layout == "features first, fused transpose" else jax.lax.optimization_barrier(xb.T)
        for i, (w, b) in enumerate(zip(weights, biases)):
            h = w.T @ h + b[:, None]
            h = h if i == last else jnp.tanh(h)
        return h.T

    def make(layout: str) -> Any:
        def loglik(ps, xb, yb):
            z = forward(layout, ps, xb)
            if classes == 1:
                return jnp.sum(yb * z[:, 0] - jax.nn.softplus(z[:, 0]))
            return jnp.sum(jnp.take_along_axis(jax.nn.log_softmax(z), yb[:, None], axis=1))

        grad = jax.value_and_grad(loglik)

        def run(ps, key, X, y):
            def body(carry, k):
                if batch is None:
                    xb, yb = X, y
                else:
                    idx = jax.random.randint(k, (batch,), 0, rows)
                    xb, yb = X[idx], y[idx]
                value, g = grad(carry, xb, yb)
                return jax.tree.map(lambda p, d: p + 1e-5 * d, carry, g), value

            return jax.lax.scan(body, ps, jax.random.split(key, steps))

        return jax.jit(run)

    runs = {layout: make(layout) for layout in LAYOUTS}
    key = jax.random.key(seed)
    for run in runs.values():
        jax.block_until_ready(run(params, key, X, y))  # compile
    times: dict[str, list[float]] = {layout: [] for layout in LAYOUTS}
    for _ in range(rounds):
        for layout, run in runs.items():
            t0 = time.perf_counter()
            jax.block_until_ready(run(params, key, X, y))
            times[layout].append((time.perf_counter() - t0) / steps * 1e6)
    return {layout: float(np.median(values)) for layout, values in times.items()}


def main(argv: list[str] | None = None) -> None:
    """Print the markdown table of every case (one row per network, one column per dtype and layout)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", choices=sorted(CASES), default="default")
    parser.add_argument("--dtypes", default="float32,float64")
    args = parser.parse_args(argv)
    import jax

    jax.config.update("jax_enable_x64", True)  # float64 arrays stay float64
    dtypes = args.dtypes.split(",")
    big = args.cases == "big"
    print("| network | rows per step | " + " | ".join(f"{d} {layout}" for d in dtypes for layout in LAYOUTS) + " |")
    print("|---|---:|" + "---:|" * (len(dtypes) * len(LAYOUTS)))
    for rows, widths, batch in CASES[args.cases]:
        cells = []
        for dtype in dtypes:
            result = step_times(rows, [int(v) for v in widths.split("-")], batch, dtype,
                                steps=100 if big else 2000, rounds=3 if big else 7)
            cells += [f"{result[layout]:,.1f}" for layout in LAYOUTS]
        where = f"{rows:,}" if batch is None else f"batch {batch}"
        print(f"| {widths} | {where} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()

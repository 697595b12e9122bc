"""PyVarInf's LeNet (``models/lenet_pyvarinf.toml``) on the synthetic 60k MNIST-shaped set.

Usage::

    PYTENSOR_FLAGS=floatX=float32 OPENBLAS_NUM_THREADS=1 \\
      XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1" \\
      .venv/bin/python -m bench.conv [--steps 300] [--repeats 3] [--accuracy-steps 6000] [--out bench/results]

Rows, measured in one process and interleaved (A B A B ...; median of ``--repeats``):

- **bnn_ppl**: ``bp.fit(..., engine="jax")`` on the compiled PyMC model, minibatch 128 (steady
  steps/s: the compiled loop is reused after the first repeat, as for any refit);
- **hand-written JAX limit**: the same network, priors and estimator written directly in JAX:
  a flat parameter vector, mean-field Gaussian, one Monte Carlo draw, the Monte Carlo -ELBO
  (log-likelihood scaled by N/B, log prior and log q of the draw), Adam, ``randint``
  minibatches, ``jax.lax.conv_general_dilated``, max-pooling by ``reduce_window`` and by a
  reshaped max (both timed, the faster is the limit), the whole loop in one ``jax.lax.scan``.

Then one longer bnn_ppl fit (``--accuracy-steps``) scores the synthetic test set (accuracy, NLL,
ECE). Writes ``conv.json`` and ``conv.md`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

import bnn_ppl as bp
from bench.baselines import _prior_loc_scale
from bench.measure import classification_metrics, time_calls

BATCH = 128
#: Posterior predictive timed against a jitted ``jax.vmap`` of the limit's forward: draws x rows.
PREDICT_DRAWS, PREDICT_ROWS = 100, 200


def _conv_patches(h, w):
    """Valid stride-1 convolution as gathered patches and one matmul (NCHW, OIHW), in plain jnp."""
    n, c, height, width = h.shape
    f, _, k, _ = w.shape
    ho, wo = height - k + 1, width - k + 1
    rows = np.arange(ho)[:, None, None, None] + np.arange(k)[None, None, :, None]
    cols = np.arange(wo)[None, :, None, None] + np.arange(k)[None, None, None, :]
    patches = h[:, :, rows, cols].transpose(0, 2, 3, 1, 4, 5).reshape(n * ho * wo, c * k * k)
    return (patches @ w.reshape(f, -1).T).reshape(n, ho, wo, f).transpose(0, 3, 1, 2)


def _limit_step(spec: bp.Network, X: np.ndarray, y: np.ndarray, lr: float = 0.01, pool: str = "reshape",
                conv: str = "lax"):
    """The hand-written mean-field ADVI of ``spec`` (conv/pool/BN/dense/relu only) in JAX.

    Returns ``(run, state, dim, predict)``: the jitted chunk ``run(state, keys)``, its initial
    state, the number of parameters, and the jitted predictive ``predict(params, key, x, draws)``
    (class probabilities of ``draws`` posterior draws, drawn inside: a ``jax.vmap`` of the forward).

    ``pool``: ``"reduce_window"`` (``lax.reduce_window``, whose gradient is XLA's slow
    select-and-scatter on CPU) or ``"reshape"`` (max over a reshaped view); both are timed and
    the faster is the limit. ``conv``: ``"lax"`` (``lax.conv_general_dilated``) or ``"patches"``
    (:func:`_conv_patches`).
    """
    import jax
    import jax.numpy as jnp

    layers = spec.resolve(X.shape[1:])
    blocks = [(layer.name, p.key, p.shape, p.prior) for layer in layers for p in layer.params]
    fan_ins = [p.fan_in for layer in layers for p in layer.params]
    sizes = [int(np.prod(shape)) for _, _, shape, _ in blocks]
    offsets = np.cumsum([0, *sizes])
    dim = int(offsets[-1])
    loc_scale = [_prior_loc_scale(pr, fan_in) for (_, _, _, pr), fan_in in zip(blocks, fan_ins)]
    prior_mu = np.concatenate([np.full(n, mu) for n, (mu, _) in zip(sizes, loc_scale)])
    prior_sigma = np.concatenate([np.full(n, sigma) for n, (_, sigma) in zip(sizes, loc_scale)])
    n_obs = X.shape[0]
    dtype = X.dtype
    prior_mu, prior_sigma = jnp.asarray(prior_mu, dtype), jnp.asarray(prior_sigma, dtype)

    def unpack(theta):
        out: dict[str, dict[str, Any]] = {}
        for (name, key, shape, _), a, b in zip(blocks, offsets[:-1], offsets[1:]):
            out.setdefault(name, {})[key] = theta[a:b].reshape(shape)
        return out

    def logits(params, x):
        h = x
        for layer in layers:
            p = params.get(layer.name, {})
            kind = layer.kind
            if kind == "conv2d" and conv == "patches":
                h = jax.nn.relu(_conv_patches(h, p["w"]) + p["b"][None, :, None, None])
            elif kind == "conv2d":
                h = jax.lax.conv_general_dilated(h, p["w"], (1, 1), "VALID",
                                                 dimension_numbers=("NCHW", "OIHW", "NCHW"))
                h = jax.nn.relu(h + p["b"][None, :, None, None])
            elif kind == "max_pool2d" and pool == "reduce_window":
                h = jax.lax.reduce_window(h, -jnp.inf, jax.lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")
            elif kind == "max_pool2d":
                n, c, hh, ww = h.shape
                h = h[:, :, : hh // 2 * 2, : ww // 2 * 2].reshape(n, c, hh // 2, 2, ww // 2, 2).max(axis=(3, 5))
            elif kind == "batch_norm":
                mean = h.mean(axis=(0, 2, 3), keepdims=True)
                var = ((h - mean) ** 2).mean(axis=(0, 2, 3), keepdims=True)
                h = (h - mean) / jnp.sqrt(var + 1e-5) * p["scale"][None, :, None, None] + p["shift"][None, :, None, None]
            elif kind == "flatten":
                h = h.reshape(h.shape[0], -1)
            elif kind == "dense":
                h = h @ p["w"] + p["b"]
                h = jax.nn.relu(h) if layer.layer.activation == "relu" else h
            else:
                raise ValueError(f"the hand-written limit has no {kind!r} layer")
        return h

    def neg_elbo(params, eps, xb, yb):
        mu, rho = params
        sigma = jax.nn.softplus(rho)
        theta = mu + sigma * eps
        z = logits(unpack(theta), xb)
        loglik = jnp.take_along_axis(jax.nn.log_softmax(z), yb[:, None], axis=1).sum() * (n_obs / xb.shape[0])
        logprior = jnp.sum(-0.5 * ((theta - prior_mu) / prior_sigma) ** 2 - jnp.log(prior_sigma))
        logq = jnp.sum(-0.5 * eps**2 - jnp.log(sigma))
        return logq - logprior - loglik

    grad = jax.value_and_grad(neg_elbo)
    b1, b2, tiny = 0.9, 0.999, 1e-8

    def body(carry, key):
        params, m, v, t = carry
        k_eps, k_idx = jax.random.split(key)
        eps = jax.random.normal(k_eps, (dim,), dtype)
        idx = jax.random.randint(k_idx, (BATCH,), 0, n_obs)
        loss, g = grad(params, eps, X_dev[idx], y_dev[idx])
        t = t + 1
        m = tuple(b1 * mi + (1 - b1) * gi for mi, gi in zip(m, g))
        v = tuple(b2 * vi + (1 - b2) * gi * gi for vi, gi in zip(v, g))
        params = tuple(p - lr * (mi / (1 - b1**t)) / (jnp.sqrt(vi / (1 - b2**t)) + tiny) for p, mi, vi in zip(params, m, v))
        return (params, m, v, t), loss

    X_dev, y_dev = jnp.asarray(X), jnp.asarray(y.astype(np.int32))

    @jax.jit
    def run(carry, keys):
        return jax.lax.scan(body, carry, keys)

    rng = np.random.default_rng(0)
    mu0 = jnp.asarray(rng.normal(0, 0.1, dim), dtype)
    rho0 = jnp.full(dim, np.log(np.expm1(0.1)), dtype)
    zeros = (jnp.zeros(dim, dtype), jnp.zeros(dim, dtype))
    state = ((mu0, rho0), zeros, zeros, jnp.asarray(0.0, dtype))

    @partial(jax.jit, static_argnums=3)
    def predict(params, key, x, draws):
        mu, rho = params
        thetas = mu + jax.nn.softplus(rho) * jax.random.normal(key, (draws, dim), dtype)
        return jax.vmap(lambda theta: jax.nn.softmax(logits(unpack(theta), x)))(thetas)

    return run, state, dim, predict


def _time_limit(run, state, steps: int, seed: int) -> tuple[float, Any, float]:
    import jax

    keys = jax.random.split(jax.random.key(seed), steps)
    t0 = time.perf_counter()
    state, losses = run(state, keys)
    losses.block_until_ready()
    return steps / (time.perf_counter() - t0), state, float(np.mean(np.asarray(losses)[-50:]))


def _log(message: str) -> None:
    print(f"[bench.conv {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run(steps: int, repeats: int, accuracy_steps: int, out: Path, n_train: int, n_test: int) -> dict:
    from bnn_ppl.synthetic import synthetic_mnist

    X_tr, X_te, y_tr, y_te = synthetic_mnist(n_train, n_test)
    spec = bp.load_spec("models/lenet_pyvarinf.toml")
    built = bp.build_model(spec, X_tr, y_tr, batch_size=BATCH)
    X = np.asarray(built.X_data.get_value())
    variants = {"lax.conv + reshape max": ("reshape", "lax"), "lax.conv + reduce_window": ("reduce_window", "lax"),
                "patches matmul + reshape max": ("reshape", "patches")}
    limits = {name: _limit_step(spec, X, y_tr, pool=pool, conv=conv) for name, (pool, conv) in variants.items()}
    dim = next(iter(limits.values()))[2]
    _log(f"{dim} variational parameters; compiling the hand-written limits")
    for limit_run, limit_state, _, _ in limits.values():
        _time_limit(limit_run, limit_state, steps, 0)  # compile
    bnn_rates: list[float] = []
    limit_rates: dict[str, list[float]] = {pool: [] for pool in limits}
    bnn_compile = None
    for r in range(repeats):
        result = bp.fit(built, n=steps, engine="jax", random_seed=r, progressbar=False)
        bnn_compile = bnn_compile if bnn_compile is not None else result.timings["compile_s"]
        # steady rate: whole fit after the first repeat (compiled loop reused), else the steady estimate
        rate = result.timings["steady_steps_per_s"] if r == 0 else steps / result.timings["fit_s"]
        bnn_rates.append(rate)
        for pool, (limit_run, limit_state, _, _) in limits.items():
            limit_rates[pool].append(_time_limit(limit_run, limit_state, steps, r)[0])
        _log(f"repeat {r}: bnn_ppl {bnn_rates[-1]:.1f} steps/s, limits "
             + ", ".join(f"{pool} {rates[-1]:.1f}" for pool, rates in limit_rates.items()))
    medians = {pool: statistics.median(rates) for pool, rates in limit_rates.items()}
    best = max(medians, key=medians.get)
    bnn_rate, limit_rate = statistics.median(bnn_rates[1:] or bnn_rates), medians[best]
    row = {"network": "lenet_pyvarinf", "parameters": spec.n_params(), "variational_parameters": 2 * dim,
           "train_rows": int(n_train), "batch": BATCH, "dtype": str(X.dtype), "steps_per_repeat": steps,
           "repeats": repeats, "bnn_ppl_steps_per_s": round(bnn_rate, 1), "limit_steps_per_s": round(limit_rate, 1),
           "ratio_vs_limit": round(bnn_rate / limit_rate, 3), "bnn_ppl_rates": [round(x, 1) for x in bnn_rates],
           "limit_variant": best, "bnn_ppl_compile_s": round(bnn_compile, 2),
           "limit_rates": {name: [round(x, 1) for x in rates] for name, rates in limit_rates.items()},
           "machine": platform.processor() or platform.machine()}
    row.update(_predictive(result, limits[best], np.asarray(X_te[:PREDICT_ROWS], dtype=X.dtype)))
    if accuracy_steps:
        row.update(_accuracy(built, accuracy_steps, X_te, y_te))
    out.mkdir(parents=True, exist_ok=True)
    (out / "conv.json").write_text(json.dumps(row, indent=2) + "\n")
    (out / "conv.md").write_text(markdown(row))
    return row


def _predictive(result, limit, X: np.ndarray, rounds: int = 3) -> dict:
    """bnn_ppl's ``predictor().sample`` against the limit's jitted ``jax.vmap`` forward,
    ``PREDICT_DRAWS`` x ``PREDICT_ROWS``, alternated over ``rounds``; medians of 5 calls each."""
    import jax

    predictor = result.predictor()
    _, state, _, predict = limit
    key = jax.random.key(0)
    routes = {"bnn_ppl": lambda: predictor.sample(X, draws=PREDICT_DRAWS, random_seed=0),
              "vmap": lambda: jax.block_until_ready(predict(state[0], key, X, PREDICT_DRAWS))}
    times: dict[str, list[float]] = {name: [] for name in routes}
    for _ in range(rounds):
        for name, fn in routes.items():
            times[name].append(time_calls(fn, repeats=5).median_s * 1e3)
    bnn_ms, vmap_ms = (statistics.median(times[name]) for name in routes)
    _log(f"predictive {PREDICT_DRAWS} draws x {len(X)} rows: bnn_ppl {bnn_ms:.1f} ms, jitted vmap {vmap_ms:.1f} ms")
    return {"predict_draws": PREDICT_DRAWS, "predict_rows": int(len(X)), "predict_bnn_ppl_ms": round(bnn_ms, 1),
            "predict_vmap_ms": round(vmap_ms, 1), "predict_ratio_vs_vmap": round(bnn_ms / vmap_ms, 3)}


def _accuracy(built, accuracy_steps: int, X_te, y_te) -> dict:
    from bnn_ppl.plots import expected_calibration_error

    _log(f"fitting {accuracy_steps} steps for the accuracy row")
    t0 = time.perf_counter()
    long_fit = bp.fit(built, n=accuracy_steps, engine="jax", random_seed=0, progressbar=False)
    fit_s = time.perf_counter() - t0
    pred = long_fit.predictor(backend="jax")
    _log(f"scoring {len(y_te):,} test images (100 draws, predictor backend jax)")
    t0 = time.perf_counter()
    draws = pred.sample(X_te, draws=100, random_seed=0)
    predict_s = time.perf_counter() - t0
    accuracy, nll = classification_metrics(draws, y_te)
    return {"device": long_fit.backend, "accuracy_steps": accuracy_steps, "accuracy_fit_s": round(fit_s, 1),
            "test_accuracy": round(accuracy, 4), "test_nll": round(nll, 4),
            "test_ece": round(float(expected_calibration_error(y_te, draws.mean(0))), 4),
            "predict_test_x_100_s": round(predict_s, 2), "test_rows": int(len(y_te))}


def markdown(row: dict) -> str:
    text = (
        f"LeNet (PyVarInf), {row['parameters']:,} parameters, {row['train_rows']:,} synthetic 1x28x28 images, "
        f"batch {row['batch']}, {row['dtype']}\n\n"
        "| row | steady steps/s (median) | all repeats |\n|---|---:|---|\n"
        f"| bnn_ppl (engine jax) | {row['bnn_ppl_steps_per_s']:,} | {row['bnn_ppl_rates']} |\n"
        + "".join(f"| hand-written JAX ADVI, {name} | {statistics.median(rates):,} | {rates} |\n"
                  for name, rates in row["limit_rates"].items())
        + f"| **ratio bnn_ppl / fastest hand-written ({row['limit_variant']})** | **{row['ratio_vs_limit']}** | |\n\n"
    )
    if "predict_bnn_ppl_ms" in row:
        text += (f"Posterior predictive, {row['predict_draws']} draws x {row['predict_rows']} test images (median ms): "
                 f"bnn_ppl `predictor().sample` {row['predict_bnn_ppl_ms']}, jitted `jax.vmap` of the hand-written "
                 f"forward {row['predict_vmap_ms']} (**{row['predict_ratio_vs_vmap']}x**).\n\n")
    if "test_accuracy" not in row:
        return text
    return text + (
        f"After {row['accuracy_steps']:,} steps ({row['accuracy_fit_s']} s): synthetic test accuracy "
        f"{row['test_accuracy']}, NLL {row['test_nll']}, ECE {row['test_ece']}; predictive on {row['test_rows']:,} "
        f"test images x 100 draws {row['predict_test_x_100_s']} s (first call, compile included).\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--accuracy-steps", type=int, default=6000)
    parser.add_argument("--train", type=int, default=60_000)
    parser.add_argument("--test", type=int, default=10_000)
    parser.add_argument("--out", default="bench/results")
    args = parser.parse_args()
    row = run(args.steps, args.repeats, args.accuracy_steps, Path(args.out), args.train, args.test)
    print(markdown(row))


if __name__ == "__main__":
    main()

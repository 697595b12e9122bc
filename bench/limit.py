"""The hand-written JAX limit: mean-field ADVI of a dense workload written directly in JAX.

What anyone fluent in JAX would write for the workload's network, priors and likelihood (the
practical upper bound for a library step that runs the same estimator):

- one flat parameter vector per variational parameter (``mu``, ``rho``; ``sigma = softplus(rho)``),
  sliced into the layers' weights and biases;
- the Monte Carlo -ELBO of one draw: the log-likelihood scaled by ``N / B``, the log prior of
  the draw and its log q (``kl="mc"``, the estimator PyMC's ADVI runs), or the closed-form KL
  of the Gaussian prior and q (``kl="closed_form"``, shown beside it: the algorithmic lever);
- ``optax.adam`` at a constant learning rate, ``jax.random.randint`` minibatches with
  replacement;
- the whole loop in one jitted ``jax.lax.scan``, the noise drawn inside the step
  (``noise="step"``) or for the whole chunk before the scan (``noise="chunk"``); a benchmark
  times both and reports the faster as the limit.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

import bnn_ppl as bp
from bench.baselines import _jax_activation, _prior_loc_scale, dense_layers
from bench.workloads import Workload

__all__ = ["Limit", "build_limit"]


@dataclass
class Limit:
    """A compiled hand-written loop: ``run(state, key, steps) -> (state, losses)`` plus its forward pass."""

    run: Any
    state: Any
    predict: Any
    dim: int
    variant: str
    loglik: Any = None  # loglik(theta, X_batch, y_batch): the minibatch log-likelihood (N/B-scaled)

    def fit(self, steps: int, seed: int = 0) -> tuple[float, np.ndarray]:
        """Run ``steps`` steps from the initial state; returns (steady steps/s of this call, losses).

        The first call for a given ``steps`` compiles; time a second one for the steady rate."""
        import jax

        t0 = time.perf_counter()
        state, losses = self.run(self.state, jax.random.key(seed), steps)
        losses = np.asarray(jax.block_until_ready(losses))
        self.final_state = state
        return steps / (time.perf_counter() - t0), losses


def build_limit(workload: Workload, *, noise: str = "step", kl: str = "mc", learning_rate: float = 0.01,
                dtype: str = "float32", layout: str = "rows") -> Limit:
    """The hand-written mean-field ADVI loop of ``workload`` (dense layers, Normal/FanInNormal priors).

    ``layout="features"`` runs the forward pass on the batch stored features first, ``W.T @ h.T``
    (what bnn_ppl's JAX engine does for narrow networks on CPU): shown beside the limit, which
    is written as anyone writes it, rows first."""
    import jax
    import jax.numpy as jnp
    import optax

    layers = dense_layers(workload)
    acts = [_jax_activation(layer.activation) for layer in layers]
    bernoulli = isinstance(workload.spec.likelihood, bp.Bernoulli)
    blocks: list[tuple[tuple[int, ...], float, float]] = []
    for layer in layers:
        blocks.append(((layer.fan_in, layer.units), *_prior_loc_scale(layer.prior, layer.fan_in)))
        if layer.bias:
            blocks.append(((layer.units,), *_prior_loc_scale(layer.bias_prior, layer.fan_in)))
    sizes = [int(np.prod(shape)) for shape, _, _ in blocks]
    offsets = np.cumsum([0, *sizes])
    dim = int(offsets[-1])
    prior_mu = jnp.asarray(np.concatenate([np.full(n, m) for n, (_, m, _) in zip(sizes, blocks)]), dtype)
    prior_sd = jnp.asarray(np.concatenate([np.full(n, s) for n, (_, _, s) in zip(sizes, blocks)]), dtype)
    X = jnp.asarray(workload.X_train, dtype)
    y = jnp.asarray(workload.y_train.astype(np.int32))
    n_obs, batch = X.shape[0], workload.batch_size

    def logits(theta, x):
        features = layout == "features"
        h, k = (x.T if features else x), 0
        for layer, act in zip(layers, acts):
            w = theta[offsets[k]:offsets[k + 1]].reshape(layer.fan_in, layer.units)
            k += 1
            h = w.T @ h if features else h @ w
            if layer.bias:
                b = theta[offsets[k]:offsets[k + 1]]
                h = h + (b[:, None] if features else b)
                k += 1
            h = act(h)
        return h.T if features else h

    def loglik(theta, xb, yb):
        z = logits(theta, xb)
        if bernoulli:
            z = z[:, 0]
            ll = yb * z - jax.nn.softplus(z)
        else:
            ll = jnp.take_along_axis(jax.nn.log_softmax(z), yb[:, None], axis=1)[:, 0]
        return ll.sum() * (n_obs / xb.shape[0])

    def neg_elbo(params, eps, xb, yb):
        mu, rho = params
        sigma = jax.nn.softplus(rho)
        theta = mu + sigma * eps
        if kl == "mc":
            logprior = jnp.sum(-0.5 * ((theta - prior_mu) / prior_sd) ** 2 - jnp.log(prior_sd))
            logq = jnp.sum(-0.5 * eps**2 - jnp.log(sigma))
            return logq - logprior - loglik(theta, xb, yb)
        kl_value = jnp.sum(jnp.log(prior_sd / sigma) + (sigma**2 + (mu - prior_mu) ** 2) / (2 * prior_sd**2) - 0.5)
        return kl_value - loglik(theta, xb, yb)

    optimizer = optax.adam(learning_rate)
    value_and_grad = jax.value_and_grad(neg_elbo)

    def body(carry, inputs):
        params, opt_state = carry
        eps, key = inputs
        if noise == "step":
            k_eps, key = jax.random.split(key)
            eps = jax.random.normal(k_eps, (dim,), dtype)
        if batch is None:
            xb, yb = X, y
        else:
            idx = jax.random.randint(key, (batch,), 0, n_obs)
            xb, yb = X[idx], y[idx]
        loss, grads = value_and_grad(params, eps, xb, yb)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    def run(state, key, steps):
        k_eps, k_steps = jax.random.split(key)
        keys = jax.random.split(k_steps, steps)
        eps = (jax.random.normal(k_eps, (steps, dim), dtype) if noise == "chunk"
               else jnp.zeros((steps, 0), dtype))
        return jax.lax.scan(body, state, (eps, keys))

    rng = np.random.default_rng(0)
    # the symmetry-breaking start bnn_ppl also uses: means at prior-width draws, sigma 0.1
    mu0 = jnp.asarray(rng.normal(0.0, 1.0, dim) * np.asarray(prior_sd) * 0.5, dtype)
    rho0 = jnp.full(dim, np.log(np.expm1(0.1)), dtype)
    params = (mu0, rho0)
    state = (params, optimizer.init(params))

    draws = workload.eval_draws

    @jax.jit
    def predict(params, key, x):
        mu, rho = params
        theta = mu + jax.nn.softplus(rho) * jax.random.normal(key, (draws, dim), dtype)
        z = jax.vmap(lambda th: logits(th, x))(theta)
        return jax.nn.sigmoid(z[..., 0]) if bernoulli else jax.nn.softmax(z, axis=-1)

    run_jit = jax.jit(run, static_argnums=(2,))
    return Limit(run=run_jit, state=state, predict=predict, dim=dim, variant=f"noise={noise}, kl={kl}, layout={layout}",
                 loglik=loglik)


def floor_breakdown(workload: Workload, steps: int, dtype: str = "float32", repeats: int = 3) -> dict[str, float]:
    """Microseconds per step of the pieces of an ADVI step, each in its own jitted ``lax.scan``:

    - ``likelihood_grad``: value and gradient of the minibatch log-likelihood at a moving theta
      (the network's forward and backward pass, the rows gathered): what no estimator avoids;
    - ``noise``: the step's D standard normals (threefry, JAX's default generator);
    - ``limit``: the whole hand-written step (:func:`build_limit`, the faster noise variant).

    ``1 - likelihood_grad / limit`` bounds what any leaner optimiser, sampler or KL could save.
    """
    import jax
    import jax.numpy as jnp

    limits = [build_limit(workload, noise=noise, dtype=dtype) for noise in ("step", "chunk")]
    n_obs, batch = workload.X_train.shape[0], workload.batch_size
    X = jnp.asarray(workload.X_train, dtype)
    y = jnp.asarray(workload.y_train.astype(np.int32))
    dim = limits[0].dim
    grad = jax.value_and_grad(limits[0].loglik)

    def lik_body(theta, key):
        if batch is None:
            xb, yb = X, y
        else:
            idx = jax.random.randint(key, (batch,), 0, n_obs)
            xb, yb = X[idx], y[idx]
        value, g = grad(theta, xb, yb)
        return theta + 1e-7 * g, value

    def noise_body(total, key):
        return total + jnp.sum(jax.random.normal(key, (dim,), dtype)), None

    lik = jax.jit(lambda th, keys: jax.lax.scan(lik_body, th, keys))
    noise = jax.jit(lambda keys: jax.lax.scan(noise_body, jnp.zeros((), dtype), keys))
    keys = jax.random.split(jax.random.key(0), steps)
    theta0 = jnp.asarray(np.random.default_rng(0).normal(0, 0.3, dim), dtype)

    def best(fn):
        jax.block_until_ready(fn())
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            jax.block_until_ready(fn())
            times.append(time.perf_counter() - t0)
        return min(times) / steps * 1e6

    for limit in limits:
        limit.fit(steps)
    return {
        "likelihood_grad_us": best(lambda: lik(theta0, keys)),
        "noise_us": best(lambda: noise(keys)),
        "limit_us": min(best(lambda lim=lim: lim.run(lim.state, jax.random.key(1), steps)) for lim in limits),
    }


def main(argv: list[str] | None = None) -> None:
    """``python -m bench.limit``: the per-step floor table of each workload (float32, the caller's threads)."""
    import argparse

    from bench.workloads import make_workloads

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--workloads", default="moons,digits,synthetic784")
    args = parser.parse_args(argv)
    print("| workload | likelihood value+grad (us/step) | noise draw (us/step) | whole hand-written step (us/step) | "
          "likelihood share | best possible speed-up over the limit |\n|---|---:|---:|---:|---:|---:|")
    for workload in make_workloads(args.workloads.split(",")):
        steps = 200 if workload.name == "synthetic784" else 5000
        f = floor_breakdown(workload, steps)
        share = f["likelihood_grad_us"] / f["limit_us"]
        print(f"| {workload.name} | {f['likelihood_grad_us']:,.1f} | {f['noise_us']:,.1f} | {f['limit_us']:,.1f} | "
              f"{share:.2f} | {1 / share:.2f}x |", flush=True)


if __name__ == "__main__":
    main()

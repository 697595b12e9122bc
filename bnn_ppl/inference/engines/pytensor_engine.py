"""The PyTensor engine: chunks of ADVI steps in one ``pytensor.scan``, compiled once (numba or C).

The same estimator (any family, ``mc_draws`` draws per step) and Adam as the JAX engine. Random numbers for a chunk (the Gaussian draws
and the minibatch indices) are made in numpy and passed in as scan sequences, so the compiled
graph holds no random state and the data stay inputs.
"""

from __future__ import annotations

import time

import numpy as np
import pytensor
import pytensor.tensor as pt
from pymc.pytensorf import resolve_backend_compile_kwargs
from pytensor.graph.replace import graph_replace

from bnn_ppl.inference.engines.base import ENGINES, EngineRun, FitRequest, step_size_factor
from bnn_ppl.inference.engines.driver import run_chunks
from bnn_ppl.inference.engines.jax_engine import chunk_length
from bnn_ppl.inference.engines.objective import FlatLogp, flat_logp
from bnn_ppl.inference.estimator import ELBO

__all__ = ["PytensorEngine"]

def _compile_chunk(flat: FlatLogp, family, shapes: dict, batch_size: int | None, lr: float, mc_draws: int, mode,
                   elbo: ELBO):
    from bnn_ppl.array_ops import pytensor_ops

    xp = pytensor_ops()
    dtype = flat.X.dtype
    X = pt.tensor("X", shape=flat.X.shape, dtype=dtype)
    y = pt.tensor("y", shape=flat.y_data.shape, dtype=flat.y_data.dtype)
    names = family.engine_names
    k = len(names)
    init = [pt.tensor(f"p_{name}", shape=shapes[name], dtype=dtype) for name in names]
    m0 = [pt.tensor(f"m_{name}", shape=shapes[name], dtype=dtype) for name in names]
    v0 = [pt.tensor(f"v_{name}", shape=shapes[name], dtype=dtype) for name in names]
    t0 = pt.scalar("t", dtype=dtype)
    n_total = pt.scalar("n_total", dtype=dtype)
    lr_floor = pt.scalar("lr_floor", dtype=dtype)
    mask = pt.vector("mask", dtype="bool")
    eps_seq = pt.tensor3("eps", dtype=dtype)  # (steps, mc_draws, noise)
    idx_seq = pt.tensor("idx", shape=(None, batch_size or 1), dtype="int64")
    b1, b2, eps_adam = 0.9, 0.999, 1e-8
    scales = {name: pt.constant(np.asarray(v, dtype=dtype)) for name, v in family.step_scales(flat.size).items()}

    def step(active, eps, idx, *carry):
        params, m_in, v_in, t = carry[:k], carry[k:2 * k], carry[2 * k:3 * k], carry[3 * k]
        q = dict(zip(names, params, strict=True))
        theta = family.sample(xp, q, eps)  # (mc_draws, D)
        xb, yb = (X, y) if batch_size is None else (X[idx], y[idx])
        # compiled per fit: the model's prior_scale (if any) enters as a constant
        given = {flat.x: xb, flat.y: yb, flat.prior_scale: pt.constant(flat.prior_scale_value, dtype=dtype)}
        loglik, rest = (sum(graph_replace(part, {flat.theta: theta[s], **given}, strict=False)
                            for s in range(mc_draws)) / mc_draws
                        for part in (flat.rows.sum(), flat.rest_other))
        gaussian = (flat.gaussian_mask, *(graph_replace(g, given, strict=False)
                                          for g in (flat.gaussian_mu, flat.gaussian_sigma)))
        loss = elbo.neg_elbo(xp, family, q, theta, loglik, rest, gaussian)
        grads = pytensor.grad(loss, list(params))
        t1 = t + 1
        step_lr = lr * step_size_factor(t, n_total, lr_floor, pt)
        out_p, out_m, out_v = [], [], []
        for name, p, m, v, g in zip(names, params, m_in, v_in, grads, strict=True):
            m_new = b1 * m + (1 - b1) * g
            v_new = b2 * v + (1 - b2) * g * g
            scale = scales.get(name, 1.0)
            p_new = p - step_lr * scale * (m_new / (1 - b1**t1)) / (pt.sqrt(v_new / (1 - b2**t1)) + eps_adam)
            out_p.append(pt.switch(active, p_new, p))
            out_m.append(pt.switch(active, m_new, m))
            out_v.append(pt.switch(active, v_new, v))
        return [*out_p, *out_m, *out_v, pt.switch(active, t1, t), loss]

    outputs = pytensor.scan(
        step,
        sequences=[mask, eps_seq, idx_seq],
        outputs_info=[*init, *m0, *v0, t0, None],
        return_updates=False,
    )
    finals = [o[-1] for o in outputs[:-1]]
    inputs = [mask, eps_seq, idx_seq, *init, *m0, *v0, t0, X, y, n_total, lr_floor]
    return pytensor.function(inputs, [*finals, outputs[-1]], mode=mode)


class PytensorEngine:
    """ADVI (any family) with Adam, many steps per compiled ``pytensor.scan`` call (numba by default, or C)."""

    def run(self, request: FitRequest) -> EngineRun:
        backend = request.backend or "numba"
        if backend == "jax":
            backend = "numba"  # the "jax" engine is the JAX path; this one is numba or C
        t0 = time.perf_counter()
        posterior = request.posterior
        built = request.built
        flat = flat_logp(built, posterior.layout)
        mode = resolve_backend_compile_kwargs(backend, None)["mode"]
        family = request.family
        names = family.engine_names
        values = family.to_engine(posterior.values())
        shapes = {name: np.shape(values[name]) for name in names}
        fn = _compile_chunk(flat, family, shapes, built.batch_size, request.learning_rate, request.mc_draws, mode,
                            request.elbo)
        k = len(names)
        params = [np.asarray(values[name], dtype=flat.X.dtype) for name in names]
        state = (params, [np.zeros_like(p) for p in params], [np.zeros_like(p) for p in params], 0.0)
        noise = family.noise_size(flat.size)
        chunk = request.chunk(chunk_length(request.n, noise * request.mc_draws))
        rng = np.random.default_rng(request.random_seed)
        batch = built.batch_size or 1

        def run_chunk(carry, n_active):
            p, m, v, t = carry
            mask = np.arange(chunk) < n_active
            eps = rng.standard_normal((chunk, request.mc_draws, noise)).astype(flat.X.dtype)
            idx = rng.integers(0, built.n_obs, size=(chunk, batch))
            out = fn(mask, eps, idx, *p, *m, *v, np.asarray(t, dtype=flat.X.dtype), flat.X, flat.y_data,
                     np.asarray(request.n, dtype=flat.X.dtype), np.asarray(request.lr_floor, dtype=flat.X.dtype))
            new = (list(out[:k]), list(out[k:2 * k]), list(out[2 * k:3 * k]), float(out[3 * k]))
            return new, out[3 * k + 1]

        def write_back(carry):
            posterior.set_values(family.from_engine(dict(zip(names, carry[0], strict=True))))

        return run_chunks(request, run_chunk, state, chunk, write_back,
                          backend=backend, setup_s=time.perf_counter() - t0)

ENGINES.add("numba", PytensorEngine)

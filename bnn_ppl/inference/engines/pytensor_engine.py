"""The PyTensor engine: chunks of ADVI steps in one ``pytensor.scan``, compiled once (numba or C).

The same estimator and Adam as the JAX engine. Random numbers for a chunk (the Gaussian draws
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

__all__ = ["PytensorEngine"]

_HALF_LOG_2PI = 0.5 * np.log(2 * np.pi)


def _sample_theta(method: str, params: list, eps: pt.TensorVariable):
    mu, second = params
    if method == "advi":
        sigma = pt.softplus(second)
        return mu + sigma * eps, pt.sum(pt.log(sigma))
    d = mu.shape[0]
    rows, cols = np.tril_indices(int(mu.type.shape[0]))
    L = pt.zeros((d, d), dtype=mu.dtype)[rows, cols].set(second)
    diag = pt.softplus(pt.diagonal(L))
    L = pt.set_subtensor(L[np.arange(mu.type.shape[0]), np.arange(mu.type.shape[0])], diag)
    return mu + pt.dot(L, eps), pt.sum(pt.log(diag))


def _compile_chunk(flat: FlatLogp, method: str, batch_size: int | None, lr: float, mode):
    dtype = flat.X.dtype
    X = pt.tensor("X", shape=flat.X.shape, dtype=dtype)
    y = pt.tensor("y", shape=flat.y_data.shape, dtype=flat.y_data.dtype)
    second_size = flat.size if method == "advi" else flat.size * (flat.size + 1) // 2
    init = [pt.tensor(f"p{i}", shape=(s,), dtype=dtype) for i, s in enumerate((flat.size, second_size))]
    m0 = [pt.tensor(f"m{i}", shape=p.type.shape, dtype=dtype) for i, p in enumerate(init)]
    v0 = [pt.tensor(f"v{i}", shape=p.type.shape, dtype=dtype) for i, p in enumerate(init)]
    t0 = pt.scalar("t", dtype=dtype)
    n_total = pt.scalar("n_total", dtype=dtype)
    lr_floor = pt.scalar("lr_floor", dtype=dtype)
    mask = pt.vector("mask", dtype="bool")
    eps_seq = pt.matrix("eps", dtype=dtype)
    idx_seq = pt.tensor("idx", shape=(None, batch_size or 1), dtype="int64")
    b1, b2, eps_adam = 0.9, 0.999, 1e-8

    def step(active, eps, idx, p0, p1, m_0, m_1, v_0, v_1, t):
        params = [p0, p1]
        theta, log_det = _sample_theta(method, params, eps)
        xb, yb = (X, y) if batch_size is None else (X[idx], y[idx])
        logp = graph_replace(flat.logp, {flat.theta: theta, flat.x: xb, flat.y: yb}, strict=False)
        logq = -0.5 * pt.sum(eps**2) - flat.size * _HALF_LOG_2PI - log_det
        loss = logq - logp
        grads = pytensor.grad(loss, params)
        t1 = t + 1
        step_lr = lr * step_size_factor(t, n_total, lr_floor, pt)
        out_p, out_m, out_v = [], [], []
        for p, m, v, g in zip(params, (m_0, m_1), (v_0, v_1), grads, strict=True):
            m_new = b1 * m + (1 - b1) * g
            v_new = b2 * v + (1 - b2) * g * g
            p_new = p - step_lr * (m_new / (1 - b1**t1)) / (pt.sqrt(v_new / (1 - b2**t1)) + eps_adam)
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
    """ADVI with Adam, many steps per compiled ``pytensor.scan`` call (numba by default, or C)."""

    def run(self, request: FitRequest) -> EngineRun:
        backend = request.backend or "numba"
        if backend == "jax":
            backend = "numba"  # the "jax" engine is the JAX path; this one is numba or C
        t0 = time.perf_counter()
        approx = request.inference.approx
        group = approx.groups[0]
        built = request.built
        flat = flat_logp(built, group.ordering)
        mode = resolve_backend_compile_kwargs(backend, None)["mode"]
        fn = _compile_chunk(flat, request.method, built.batch_size, request.learning_rate, mode)
        names = ("mu", "rho") if request.method == "advi" else ("mu", "L_tril")
        shared = [group.params_dict[name] for name in names]
        params = [np.asarray(p.get_value(), dtype=flat.X.dtype) for p in shared]
        state = (params, [np.zeros_like(p) for p in params], [np.zeros_like(p) for p in params], 0.0)
        chunk = request.chunk(chunk_length(request.n, flat.size))
        rng = np.random.default_rng(request.random_seed)
        batch = built.batch_size or 1

        def run_chunk(carry, n_active):
            p, m, v, t = carry
            mask = np.arange(chunk) < n_active
            eps = rng.standard_normal((chunk, flat.size)).astype(flat.X.dtype)
            idx = rng.integers(0, built.n_obs, size=(chunk, batch))
            out = fn(mask, eps, idx, *p, *m, *v, np.asarray(t, dtype=flat.X.dtype), flat.X, flat.y_data,
                     np.asarray(request.n, dtype=flat.X.dtype), np.asarray(request.lr_floor, dtype=flat.X.dtype))
            new = ([out[0], out[1]], [out[2], out[3]], [out[4], out[5]], float(out[6]))
            return new, out[7]

        def write_back(carry):
            for var, value in zip(shared, carry[0], strict=True):
                var.set_value(np.asarray(value, dtype=var.dtype))

        return run_chunks(request, run_chunk, state, chunk, write_back,
                          backend=backend, setup_s=time.perf_counter() - t0)

ENGINES.add("numba", PytensorEngine)

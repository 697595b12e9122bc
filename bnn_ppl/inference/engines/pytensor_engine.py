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
from pytensor.graph.basic import Variable
from pytensor.graph.traversal import ancestors
from pytensor.graph.replace import graph_replace
from pytensor.tensor.variable import TensorConstant

from bnn_ppl.inference.engines.base import ENGINES, EngineRun, FitRequest, step_size_factor, structure_key
from bnn_ppl.inference.engines.driver import run_chunks
from bnn_ppl.inference.engines.jax_engine import chunk_length
from bnn_ppl.inference.engines.objective import FlatLogp, flat_logp
from bnn_ppl.inference.estimator import ELBO

__all__ = ["PytensorEngine", "LIFT_MIN_SIZE"]

#: Constant arrays of a step with at least this many entries are passed in as inputs (see ``lift``).
LIFT_MIN_SIZE = 64


def _compile_chunk(flat: FlatLogp, family, shapes: dict, batch_size: int | None, mc_draws: int, mode, elbo: ELBO):
    """The chunk function ``(mask, eps, idx, *params, *m, *v, t, X, y, n_total, lr_floor, lr, prior_scale)``."""
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
    lr = pt.scalar("learning_rate", dtype=dtype)
    prior_scale = pt.scalar("prior_scale", dtype=dtype)
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
        given = {flat.x: xb, flat.y: yb, flat.prior_scale: prior_scale}
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
        return lift([*out_p, *out_m, *out_v, pt.switch(active, t1, t), loss])

    lifted: dict[Variable, Variable] = {}

    def lift(outs: list) -> list:
        # constant arrays of the step (a full-rank family's (d, d) masks, the step scales) become
        # inputs: numba embeds each constant in the compiled code, which made the LLVM module
        # large, and one past 1 MB (a (d, d) float64 mask at d > 353) keeps numba from caching
        # the loop on disk, so every process compiled it again (digits 64-7-10 full rank: ~30 s)
        for const in ancestors(outs):
            if isinstance(const, TensorConstant) and const.data.size >= LIFT_MIN_SIZE and const not in lifted:
                lifted[const] = const.type(name=f"constant_{len(lifted)}")
        return graph_replace(outs, lifted, strict=False) if lifted else outs

    outputs = pytensor.scan(
        step,
        sequences=[mask, eps_seq, idx_seq],
        outputs_info=[*init, *m0, *v0, t0, None],
        return_updates=False,
    )
    finals = [o[-1] for o in outputs[:-1]]
    inputs = [mask, eps_seq, idx_seq, *init, *m0, *v0, t0, X, y, n_total, lr_floor, lr, prior_scale,
              *lifted.values()]
    fn = pytensor.function(inputs, [*finals, outputs[-1]], mode=mode, on_unused_input="ignore")  # prior_scale
    return _WithConstants(fn, [const.data for const in lifted])


#: Compiled chunk functions of recent fits, by model structure (as the JAX engine's): a refit of
#: the same network on data of the same shape (a new seed, learning rate or prior scale) skips
#: PyTensor's rewrites and numba's load (~2 s for moons).
_COMPILED: dict[tuple, "_WithConstants"] = {}
_CACHE_SIZE = 8


class _WithConstants:
    """The compiled chunk, called with the lifted constants' values appended to its inputs."""

    def __init__(self, function: pytensor.compile.function.types.Function, values: list[np.ndarray]) -> None:
        self.function, self.values = function, values

    def __call__(self, *args: np.ndarray) -> list[np.ndarray]:
        return self.function(*args, *self.values)


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
        # a model a user extended holds their variables' values as constants: compiled anew
        key = None if built.extended else (*structure_key(request, flat), backend)
        fn = _COMPILED.get(key)
        if fn is None:
            fn = _compile_chunk(flat, family, shapes, built.batch_size, request.mc_draws, mode, request.elbo)
            if key is not None:
                _COMPILED[key] = fn
            while len(_COMPILED) > _CACHE_SIZE:
                _COMPILED.pop(next(iter(_COMPILED)))
        scalars = [np.asarray(value, dtype=flat.X.dtype)
                   for value in (request.n, request.lr_floor, request.learning_rate, flat.prior_scale_value)]
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
            out = fn(mask, eps, idx, *p, *m, *v, np.asarray(t, dtype=flat.X.dtype), flat.X, flat.y_data, *scalars)
            new = (list(out[:k]), list(out[k:2 * k]), list(out[2 * k:3 * k]), float(out[3 * k]))
            return new, out[3 * k + 1]

        def write_back(carry):
            posterior.set_values(family.from_engine(dict(zip(names, carry[0], strict=True))))

        return run_chunks(request, run_chunk, state, chunk, write_back,
                          backend=backend, setup_s=time.perf_counter() - t0,
                          finite=lambda carry: all(np.isfinite(p).all() for p in carry[0]))

ENGINES.add("numba", PytensorEngine)

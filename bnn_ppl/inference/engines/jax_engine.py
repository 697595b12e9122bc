"""The JAX engine: chunks of ADVI steps in one ``lax.scan``, jit-compiled once per fit shape.

The model log-density comes from PyMC's own graph (``flat_logp``), translated to JAX by
:func:`bnn_ppl.array_ops.jaxify` (PyMC's ``get_jaxified_graph``; for dense networks on CPU with the forward pass run
features first, :mod:`~bnn_ppl.inference.engines.features_first`), except the fixed Normal prior terms, which the
estimator (:class:`~bnn_ppl.inference.estimator.ELBO`: ``mc_draws`` reparameterised draws from
the family) evaluates in one flat pass; the estimator, Adam and minibatch sampling (uniform
indices with replacement, like ``pm.Minibatch``) run inside the scan. Data are jit arguments,
never constants. Runs on a GPU when JAX sees one. On a CPU, when a chunk's noise is large
enough to matter (``PREFETCH_MIN_DRAWS``), the next chunk's noise and rows are drawn on a second
thread while the current chunk runs (:class:`~bnn_ppl.inference.engines.ahead.ChunkAhead`): the
same numbers, from the same keys. On a CPU one compiled call runs on one core and threefry noise
is 15-25% of a mid-sized network's step (digits 64-32-10, batch 128), which the second core takes.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from bnn_ppl.inference.engines.ahead import ChunkAhead, StreamedRows, chunk_lengths
from bnn_ppl.inference.engines.base import ENGINES, EngineRun, FitRequest, has_folds, step_size_factor, structure_key
from bnn_ppl.inference.engines.driver import run_chunks
from bnn_ppl.inference.engines.features_first import could_run_features_first, features_first_logp
from bnn_ppl.inference.engines.jax_cache import Persisted, cache_root, program_key, use_persistent_cache
from bnn_ppl.inference.engines.local import LocalLogp, local_logp, local_theta
from bnn_ppl.inference.engines.objective import flat_logp
from bnn_ppl.inference.estimator import ELBO

__all__ = ["JaxEngine", "CHUNK_SIZE", "MAX_CHUNK_DRAWS", "chunk_length"]

#: Steps per compiled call; between chunks the progress bar, callbacks and NaN checks run.
CHUNK_SIZE = 1000
#: Upper bound on the Gaussian draws made per chunk (chunk length x parameters).
MAX_CHUNK_DRAWS = 8_000_000
#: Upper bound on the bytes of one chunk's minibatch rows streamed from data larger than memory
#: (two chunks are in memory at once: the running one and the next, read meanwhile).
STREAM_CHUNK_BYTES = 64 * 2**20
#: Draw each chunk's noise and minibatch rows on a second thread during the previous chunk (CPU, no mesh).
PREFETCH = True
#: Fewest normals per step worth drawing ahead (below it the noise is ~1% of a step and a second
#: compiled function costs more at start-up than it saves: moons 2-5-5-1 draws 51).
PREFETCH_MIN_DRAWS = 1000


def _build_step(logp_fn, family, batch_size: int | None, mc_draws: int, members: int, tolerate: bool, folds: bool,
                row_sharding: Any = None, streamed: bool = False, *, elbo: ELBO, prior_fn: Any, gaussian_mask: Any,
                local: LocalLogp | None = None):
    """``build(d)``: the jitted chunk functions ``(draw, run, fused)`` (see ``build``); ``fused(carry,
    key_data, X, y, n_total, hyper, length)`` runs a chunk from its key (``key_data``: a PRNG key's raw data).

    ``hyper`` holds what may differ between members without changing the compiled graph (a
    leading members axis when ``members > 1``): ``learning_rate``, ``lr_floor``,
    ``prior_scale``, the member's training ``rows`` (indices into X, the first ``n_rows`` of
    them used) with their ``weights`` (full batch: 1 for a training row, else 0) or
    ``row_scale`` (minibatch: ``n_rows / n_obs``, the likelihood's ``total_size`` correction).
    Without ``folds`` every member trains on all rows and the rows/weights are not used.
    With ``row_sharding`` (a ``NamedSharding`` over a device mesh) each step's batch rows are
    split over the devices (data parallel: parameters replicated, XLA sums the gradients).
    ``streamed``: ``X``/``y`` are the chunk's minibatches, (length, batch, ...), read on the host
    from data larger than memory (:class:`~bnn_ppl.inference.engines.ahead.StreamedRows`), in place of indexing the data.
    With ``tolerate``, a member whose loss or parameters stop being finite keeps its last good
    parameters and reports NaN losses from then on, while the others go on.
    ``elbo`` is the estimator; ``logp_fn`` leaves out the fixed Normal prior terms and
    ``prior_fn(prior_scale) -> (mu, sigma)`` gives them (``gaussian_mask``: where).
    With ``local`` (:mod:`~bnn_ppl.inference.engines.local`) the dense layers' pre-activations are
    drawn in place of their weights, and ``logp_fn`` is not used.
    """
    import jax
    import jax.numpy as jnp

    from bnn_ppl.array_ops import jax_ops

    xp = jax_ops()
    names = family.engine_names
    b1, b2, eps_adam = 0.9, 0.999, 1e-8

    def neg_elbo(params, eps, xb, yb, weights, prior_scale):
        # -ELBO = -E_q[log p(theta, D)] - H[q], estimated as ``elbo`` says (ELBO.neg_elbo)
        q = dict(zip(names, params, strict=True))
        if local is None:
            theta = draws = family.sample(xp, q, eps)  # (mc_draws, D)

            def logp(th):
                rest, rows = logp_fn(th, xb, yb, prior_scale)
                return jnp.sum(weights * rows if folds else rows), rest
        else:
            var = family.marginal_var(xp, q)
            theta, draws = q["mu"][None], eps  # closed-form prior terms and entropy read q alone

            def logp(e):
                th, noise = local_theta(family, xp, q, local, e)
                rest, rows = local.fn(th, q["mu"], var, noise, xb, yb, prior_scale)
                return jnp.sum(weights * rows if folds else rows), rest

        if mc_draws == 1:
            loglik, rest = logp(draws[0])
        else:
            loglik, rest = (jnp.mean(part) for part in jax.vmap(logp)(draws))
        gaussian = (gaussian_mask, *prior_fn(prior_scale))
        return elbo.neg_elbo(xp, family, q, theta, loglik, rest, gaussian)

    value_and_grad = jax.value_and_grad(neg_elbo)

    def step(carry, inputs, X, y, n_total, hyper):
        params, m, v, t, alive = carry
        eps, idx = inputs
        if eps.ndim == 0:  # a key: draw this step's noise here (large networks)
            eps = jax.random.normal(eps, (mc_draws, noise_size), params[0].dtype)
        if streamed:  # rows arrive in the file's dtype (float32 files: half the bytes to move)
            xb, yb, weights = idx[0].astype(params[0].dtype), idx[1], hyper.get("row_scale")
        elif batch_size is None:
            xb, yb, weights = X, y, hyper.get("weights")
        else:
            xb, yb, weights = X[idx], y[idx], hyper.get("row_scale")
        if row_sharding is not None:
            xb, yb = (jax.lax.with_sharding_constraint(a, row_sharding(a.ndim)) for a in (xb, yb))
        loss, grads = value_and_grad(params, eps, xb, yb, weights, hyper["prior_scale"])
        t1 = t + 1
        m1 = tuple(b1 * mi + (1 - b1) * g for mi, g in zip(m, grads))
        v1 = tuple(b2 * vi + (1 - b2) * g * g for vi, g in zip(v, grads))
        c1 = 1 - b1**t1
        c2 = 1 - b2**t1
        step_lr = hyper["learning_rate"] * step_size_factor(t, n_total, hyper["lr_floor"], jnp)
        new = tuple(p - step_lr * scale * (mi / c1) / (jnp.sqrt(vi / c2) + eps_adam)
                    for p, mi, vi, scale in zip(params, m1, v1, scales))
        if not tolerate:
            return (new, m1, v1, t1, alive), loss
        ok = alive & jnp.isfinite(loss) & jnp.all(jnp.stack([jnp.all(jnp.isfinite(p)) for p in new]))
        keep = lambda a, b: tuple(jnp.where(ok, x, y) for x, y in zip(a, b))  # noqa: E731
        carry = (keep(new, params), keep(m1, m), keep(v1, v), jnp.where(ok, t1, t), ok)
        return carry, jnp.where(ok, loss, jnp.nan)

    noise_size = 0

    def draw_member(key_data, hyper, n_obs, length, dtype):
        # a chunk's random inputs: its noise and its uniform minibatch rows (with replacement,
        # like pm.Minibatch) among the member's training rows
        k_eps, k_idx = jax.random.split(jax.random.wrap_key_data(key_data))
        if length * mc_draws * noise_size * members <= MAX_CHUNK_DRAWS:
            # Small networks: the noise of the whole chunk in one call; drawing it step by step
            # inside the scan cost ~125 us/step on CPU (5x the moons net's logp and gradient).
            eps = jax.random.normal(k_eps, (length, mc_draws, noise_size), dtype)
        else:
            eps = jax.random.split(k_eps, length)
        if streamed:
            idx = None  # this chunk's rows arrive as X, y, drawn on the host (_Stream)
        elif folds:
            idx = hyper["rows"][jax.random.randint(k_idx, (length, batch_size or 1), 0, hyper["n_rows"])]
        else:
            idx = jax.random.randint(k_idx, (length, batch_size or 1), 0, n_obs)
        return eps, idx

    def run_member(carry, inputs, X, y, n_total, hyper):
        if streamed:
            inputs = (inputs[0], (X, y))
        return jax.lax.scan(lambda c, a: step(c, a, X, y, n_total, hyper), carry, inputs)

    scales: tuple = ()

    def build(d: int):
        """``(draw, run, fused)``: ``draw(key_data, hyper, n_obs, length, dtype) -> inputs`` (a chunk's
        noise and rows), ``run(carry, inputs, X, y, n_total, hyper)`` (the chunk's steps) and
        ``fused(carry, key_data, X, y, n_total, hyper, length)``, the two in one compiled call."""
        nonlocal noise_size, scales
        noise_size = _noise_size(family, d, local)
        given = family.step_scales(d)
        scales = tuple(np.asarray(given[name]) if name in given else 1.0 for name in names)
        if members == 1:
            draw, run = draw_member, run_member
        else:
            # independent fits: one compiled loop over all members (keys and hyper differ, data shared)
            def draw(key, hyper, n_obs, length, dtype):
                return jax.vmap(lambda k, h: draw_member(k, h, n_obs, length, dtype))(key, hyper)

            def run(carry, inputs, X, y, n_total, hyper):
                return jax.vmap(lambda c, i, h: run_member(c, i, X, y, n_total, h))(carry, inputs, hyper)

        def fused(carry, key, X, y, n_total, hyper, length):
            dtype = carry[0][0].dtype
            return run(carry, draw(key, hyper, 0 if streamed else X.shape[0], length, dtype), X, y, n_total, hyper)

        return (jax.jit(draw, static_argnums=(2, 3, 4)), jax.jit(run),
                jax.jit(fused, static_argnums=(6,)))

    return build


def _noise_size(family: Any, d: int, local: LocalLogp | None) -> int:
    """Standard normals one Monte Carlo draw of a step needs: the family's, or with local
    reparameterisation the other coordinates' and every row's pre-activations."""
    return family.noise_size(d) if local is None else local.other.size + local.n_local


#: Jitted chunk functions of recent fits, by model structure: refitting the same network on
#: data of the same shape (cross-validation, estimator checks, restarts) skips compilation.
_COMPILED: dict[tuple, Any] = {}
_CACHE_SIZE = 16


def chunk_length(n: int, n_params: int) -> int:
    """Steps per compiled call: ``CHUNK_SIZE``, or for large networks (whose steps take
    milliseconds) as many as make about ``MAX_CHUNK_DRAWS`` parameter updates, at least 50."""
    return int(max(1, min(CHUNK_SIZE, n, max(50, MAX_CHUNK_DRAWS // max(1, n_params)))))


def _row_sharding(mesh: Any) -> Any:
    """``ndim -> NamedSharding`` splitting the leading (row) axis over the mesh's first axis; None without a mesh."""
    if mesh is None:
        return None
    import jax

    axis = mesh.axis_names[0]
    return lambda ndim: jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(axis, *([None] * (ndim - 1))))


def _member_hyper(request: FitRequest, flat: Any, dtype: Any) -> dict[str, np.ndarray]:
    """The ``hyper`` inputs of every member (a leading members axis for ensembles and ``fit_many``)."""
    n_obs, members = request.built.n_obs, request.posterior.members
    given = dict(request.member_hyper or {})
    rows = given.pop("rows", None)
    n_rows = np.asarray(given.pop("n_rows", n_obs))
    defaults = {"learning_rate": request.learning_rate, "lr_floor": request.lr_floor,
                "prior_scale": flat.prior_scale_value}
    lead = (members,) if members > 1 else ()
    hyper = {name: np.broadcast_to(np.asarray(given.pop(name, value), dtype=dtype), lead).copy()
             for name, value in defaults.items()}
    if given:
        raise ValueError(f"Unknown member_hyper entries {sorted(given)}")
    if rows is None:
        return hyper
    hyper["rows"] = np.asarray(rows, dtype=np.int32)
    hyper["n_rows"] = np.broadcast_to(n_rows, lead).astype(np.int32)
    if request.built.batch_size is None:  # full batch: weight 1 on each training row, 0 elsewhere
        rows2, n2 = hyper["rows"].reshape(-1, hyper["rows"].shape[-1]), hyper["n_rows"].reshape(-1)
        weights = np.zeros((rows2.shape[0], n_obs), dtype=dtype)
        for k, (member_rows, used) in enumerate(zip(rows2, n2, strict=True)):
            weights[k, member_rows[:used]] = 1.0
        hyper["weights"] = weights.reshape((*lead, n_obs))
    else:
        hyper["row_scale"] = (hyper["n_rows"] / n_obs).astype(dtype)
    return hyper


def _user_code_registered() -> list[str]:
    """Activations, priors, layers, likelihoods, families or prior builders registered from outside
    bnn_ppl: their code is not in a kept program's key (an edited activation would run stale), so
    a process that has any keeps no programs on disk."""
    from bnn_ppl.compile.priors import PRIOR_BUILDERS
    from bnn_ppl.inference.families import FAMILIES
    from bnn_ppl.registry import defined_in_bnn_ppl
    from bnn_ppl.spec import ACTIVATIONS, LAYERS, LIKELIHOODS, PRIORS

    names = [name for registry in (ACTIVATIONS, PRIORS, LAYERS, LIKELIHOODS, FAMILIES) for name in registry.foreign()]
    return names + [cls.__name__ for cls, fn in PRIOR_BUILDERS.items() if not defined_in_bnn_ppl(fn)]


def _persisted(jitted: Any, cache_key: tuple | None, request: FitRequest, built: Any) -> tuple:
    """The chunk functions ``(draw, run, fused)``: kept across processes (:class:`~.jax_cache.Persisted`)
    when the program has a stable key, runs on one device and holds only bnn_ppl's code, else ``jitted()``'s own."""
    root = cache_root()
    key = None
    if cache_key is not None and request.mesh is None and root is not None and not _user_code_registered():
        from bnn_ppl.spec.io import spec_to_dict

        # the spec by its saved form (its repr is a summary); the module's constants that shape the trace
        key = program_key(spec_to_dict(built.spec), cache_key[1:], MAX_CHUNK_DRAWS)
    if key is None:
        return jitted()
    shared = Persisted("chunk", key, jitted, root / "jax-export")
    parts = [("draw", 0, (2, 3, 4)), ("run", 1, ()), ("fused", 2, (6,))]
    return tuple(Persisted(name, key, lambda i=i: shared.jitted()[i], shared.directory, static)
                 for name, i, static in parts)


class JaxEngine:
    """ADVI (any family) with Adam, ``CHUNK_SIZE`` steps per jit-compiled call; ensembles vmapped."""

    def run(self, request: FitRequest) -> EngineRun:
        import jax
        import jax.numpy as jnp

        from bnn_ppl.array_ops import jax_x64_as_pytensor
        from bnn_ppl.array_ops import jaxify as get_jaxified_graph

        jax_x64_as_pytensor()  # the dtypes below; the graph's translation may never run (jax_cache.py)
        use_persistent_cache()
        t0 = time.perf_counter()
        posterior = request.posterior
        built = request.built
        candidate = could_run_features_first(built, jax.default_backend(), request.mesh)
        local_on = request.elbo.local_reparameterization
        flat = flat_logp(built, posterior.layout, output_split=candidate or local_on)
        # a model a user extended (a Potential, a prior, a pm.Data of their own, whose values the JAX
        # graph holds as constants) compiles anew for every fit: the key sees only the spec's model.
        # It holds whether the forward pass may run features first: whether it does is read from
        # PyMC's graph, which a program loaded from disk (jax_cache.py) never builds.
        cache_key = None if built.extended else (*structure_key(request, flat), candidate)
        compiled, noise_size = _COMPILED.get(cache_key, (None, 0))
        if compiled is None:
            def features_first() -> bool:
                return candidate and flat.rows_given_output is not None

            local = None
            if local_on:  # pre-activations drawn in place of the weights (local.py)
                local = local_logp(built, flat, posterior.layout, get_jaxified_graph, features_first=features_first())
            noise_size = _noise_size(request.family, flat.size, local)

            def jitted():
                if local is not None:
                    logp_fn = None
                elif features_first():  # dense networks on CPU (features_first.py)
                    logp_fn = features_first_logp(built, flat, get_jaxified_graph)
                else:
                    logp_fn = get_jaxified_graph(inputs=[flat.theta, flat.x, flat.y, flat.prior_scale],
                                                 outputs=[flat.rest_other, flat.rows])
                prior_fn = get_jaxified_graph(inputs=[flat.prior_scale],
                                              outputs=[flat.gaussian_mu, flat.gaussian_sigma])
                return _build_step(logp_fn, request.family, built.batch_size, request.mc_draws, posterior.members,
                                   request.tolerate_divergence, has_folds(request), _row_sharding(request.mesh),
                                   streamed=built.source is not None, elbo=request.elbo, prior_fn=prior_fn,
                                   gaussian_mask=flat.gaussian_mask, local=local)(flat.size)

            compiled = _persisted(jitted, cache_key, request, built)
            if cache_key is not None:
                _COMPILED[cache_key] = compiled, noise_size
            while len(_COMPILED) > _CACHE_SIZE:
                _COMPILED.pop(next(iter(_COMPILED)))
        names = request.family.engine_names
        values = request.family.to_engine(posterior.values())
        # host arrays moved with device_put: an eager jnp call compiles a conversion per new
        # shape (~10 ms each in a fresh process), before the first step
        put = jax.device_put
        dtype = jax.dtypes.canonicalize_dtype(np.asarray(values[names[0]]).dtype)
        params = tuple(put(np.asarray(values[name], dtype=dtype)) for name in names)
        zeros = tuple(put(np.zeros(np.shape(values[name]), dtype=dtype)) for name in names)
        members = posterior.members
        lead = (members,) if members > 1 else ()
        state = (params, zeros, zeros, put(np.zeros(lead, dtype=dtype)), put(np.ones(lead, dtype=bool)))
        X, y = put(flat.X), put(flat.y_data)
        if request.mesh is not None:  # data and parameters on every device of the mesh
            replicated = jax.sharding.NamedSharding(request.mesh, jax.sharding.PartitionSpec())
            X, y, state = jax.device_put((X, y, state), replicated)
        n_total = put(np.asarray(request.n, dtype=dtype))
        hyper = {name: put(value) for name, value in _member_hyper(request, flat, dtype).items()}
        draws_per_step = request.mc_draws * noise_size * members
        chunk = request.chunk(chunk_length(request.n, draws_per_step))
        if built.source is not None:  # a chunk's streamed rows stay within STREAM_CHUNK_BYTES
            chunk = max(1, min(chunk, STREAM_CHUNK_BYTES // (built.batch_size * built.source.native_row_bytes)))
        lengths = chunk_lengths(request.n, chunk)
        n_chunks = len(lengths)
        # on a CPU, a chunk's noise (when drawn for the whole chunk) and rows are drawn on a second
        # thread during the previous chunk (larger networks draw each step's noise in the step:
        # drawn ahead as a chunk, 784-256-10 ran 0.75x)
        prefetch = (PREFETCH and request.mesh is None and jax.default_backend() == "cpu" and n_chunks > 1
                    and PREFETCH_MIN_DRAWS <= draws_per_step and chunk * draws_per_step <= MAX_CHUNK_DRAWS)
        seeds = request.member_seeds or (request.seed(),)
        # member k's chunk keys are those of a one-member fit seeded with member_seeds[k]
        # (members, chunks, 2) key data on the host: the compiled chunk wraps its key (no eager indexing)
        key_data = np.stack([np.asarray(jax.random.key_data(jax.random.split(jax.random.key(seed), n_chunks)))
                             for seed in seeds])
        chunk_keys = iter(range(n_chunks))
        stream = (None if built.source is None else
                  StreamedRows(built, jax.random.wrap_key_data(key_data[0]), lengths, flat.y_data.dtype))
        draw, run, fused = compiled
        key_of = (lambda i: key_data[0, i]) if members == 1 else (lambda i: key_data[:, i])
        n_obs = 0 if stream is not None else int(X.shape[0])
        # the draw itself compiles on the second thread, during the first chunk's compilation
        ahead = (ChunkAhead(lambda i: jax.block_until_ready(draw(key_of(i), hyper, n_obs, lengths[i], dtype)),
                            n_chunks, start=True, name="bnn_ppl-draw-ahead") if prefetch else None)

        def run_chunk(carry, n_active):
            # the last chunk may be shorter: one more compilation at most, no masked steps
            i = next(chunk_keys)
            data = (X, y) if stream is None else stream.batches(i)
            if ahead is None:
                new, losses = fused(carry, key_of(i), *data, n_total, hyper, n_active)
            else:  # lengths[i] == n_active
                new, losses = run(carry, ahead.get(i), *data, n_total, hyper)
            return new, np.asarray(losses)

        def write_back(carry):
            posterior.set_values(request.family.from_engine(
                {name: np.asarray(value) for name, value in zip(names, carry[0], strict=True)}))

        all_finite = jax.jit(lambda ps: jnp.all(jnp.stack([jnp.all(jnp.isfinite(p)) for p in ps])))
        try:
            return run_chunks(request, run_chunk, state, chunk, write_back,
                              backend=f"jax-{jax.default_backend()}", setup_s=time.perf_counter() - t0,
                              finite=lambda carry: bool(all_finite(carry[0])))
        finally:
            if stream is not None:
                stream.close()
            if ahead is not None:
                ahead.close()


ENGINES.add("jax", JaxEngine)

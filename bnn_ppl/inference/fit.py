"""``fit_record``: variational inference on a built model, returning a :class:`FitRecord`."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bnn_ppl.compile import BuiltModel
from bnn_ppl.compile.model import MAX_PARAMETERS
from bnn_ppl.errors import FitError, ParameterError
from bnn_ppl.inference.devices import resolve_mesh
from bnn_ppl.inference.engines import ENGINES, FitRequest, resolve_engine
from bnn_ppl.inference.engines.driver import deferred_interrupt
from bnn_ppl.inference.estimator import ELBO, resolve_elbo
from bnn_ppl.inference.families import Family, flat_layout, resolve_family
from bnn_ppl.inference.init import DEFAULT_INIT_SIGMA, initial_means, transformed_point
from bnn_ppl.inference.posterior import VariationalPosterior
from bnn_ppl.inference.result import FitRecord
from bnn_ppl.seeds import check_seed
from bnn_ppl.spec._validate import real_number

__all__ = ["fit_record", "run_members", "check_options", "check_elbo", "Member", "BACKENDS"]

#: Default final step size as a fraction of the first (see ``fit``'s ``lr_floor``). Digits
#: 64-32-10, 5 seeds: constant Adam 0.01 gave 0.953/0.962/0.967 (min/median/max accuracy) and
#: -ELBO ~995; decaying to 1% gave 0.9655/0.9666/0.9766 and ~950. Moons: 117.3 vs 118.7.
#: (Measured with the decay over all steps; it now starts halfway, see ``HOLD_FRACTION``.)
DEFAULT_LR_FLOOR = 0.01
BACKENDS = ("numba", "c", "jax")
#: Most steps one fit runs (per-chunk bookkeeping is allocated up front; a float32 step counter
#: stops counting at 2**24 already).
MAX_STEPS = 10**9


def _positive_int(value: Any, name: str, example: str, caller: str = "fit") -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ParameterError(f"The {name!r} parameter of {caller} must be a positive integer such as {example}. "
                             f"Got {value!r} instead.")
    return int(value)


def check_options(*, n: Any, learning_rate: Any, lr_floor: Any, init_sigma: Any, mc_draws: Any,
                  caller: str = "fit") -> tuple[int, int]:
    """Validate the optimiser settings ``fit`` and ``fit_many`` share; returns ``(n, mc_draws)`` as ints."""
    n = _positive_int(n, "n", "30_000", caller)
    if n > MAX_STEPS:
        raise ParameterError(f"The 'n' parameter of {caller} asks for {n:,} steps, more than bnn_ppl.inference.fit."
                             f"MAX_STEPS = {MAX_STEPS:,}.")
    if (floor := real_number(lr_floor)) is None or not 0 < floor <= 1:
        raise ParameterError(f"The 'lr_floor' parameter of {caller} must lie in (0, 1]. Got {lr_floor!r} instead.")
    for name, value in (("learning_rate", learning_rate), ("init_sigma", init_sigma)):
        if (number := real_number(value)) is None or not 0 < number < math.inf:
            raise ParameterError(f"The {name!r} parameter of {caller} must be a positive finite number. Got {value!r} "
                                 "instead.")
    return n, _positive_int(mc_draws, "mc_draws", "1", caller)


def check_elbo(elbo: ELBO, engine_name: str, built: BuiltModel, family: Family) -> None:
    """PyMC's own loop (``engine="pymc"``) runs PyMC's objective: only the default estimator; local
    reparameterisation needs the JAX engine, mean-field and dense layers (:func:`local_problem`)."""
    if elbo.local_reparameterization:
        from bnn_ppl.inference.engines.local import local_problem

        problem = local_problem(built, family.name, engine_name)
        if problem is not None:
            raise ParameterError(problem)
    if engine_name == "pymc" and not elbo.is_default:
        raise ParameterError(f"engine='pymc' runs PyMC's own ADVI objective, which has no {elbo.label()}; "
                             "use engine='jax' or 'numba'.")


def _member_start(built: BuiltModel, family: Family, seed: int | None, init_sigma: float):
    """One member's initial parameters and engine seed: the random path of a one-member fit with ``seed``."""
    rng = np.random.default_rng(seed)
    start = initial_means(built, rng)
    family_rng = np.random.default_rng(_child_seed(rng))
    point = transformed_point(built.model, start)
    layout = flat_layout(built.model)
    mu = np.concatenate([np.asarray(point[name], dtype=float).ravel() for name in layout])
    return family.initial_params(mu, init_sigma, family_rng), _child_seed(rng)


def fit_record(
    built: BuiltModel,
    n: int = 30_000,
    *,
    method: str | Family = "auto",
    engine: str = "auto",
    backend: str | None = None,
    learning_rate: float = 0.01,
    lr_floor: float = DEFAULT_LR_FLOOR,
    init_sigma: float = DEFAULT_INIT_SIGMA,
    mc_draws: int = 1,
    elbo: ELBO | None = None,
    ensemble: int = 1,
    random_seed: int | None = None,
    progressbar: bool = True,
    callbacks: Sequence[Callable] = (),
    callback_every: int | None = None,
    devices: Any = None,
) -> FitRecord:
    """Run the optimisation and return its plain :class:`FitRecord`.

    :func:`bnn_ppl.fit` (the public function, documented there) takes the same arguments and
    returns the record as a :class:`bnn_ppl.FitResult`.
    """
    if not isinstance(built, BuiltModel):
        raise ParameterError(f"fit needs a BuiltModel from build_model(spec, X, y). Got {type(built).__name__}.")
    n, mc_draws = check_options(n=n, learning_rate=learning_rate, lr_floor=lr_floor, init_sigma=init_sigma,
                                mc_draws=mc_draws)
    random_seed = check_seed(random_seed, "fit")
    n_params = sum(slc.stop - slc.start for _, slc, _, _ in flat_layout(built.model).values())
    family = resolve_family(method, n_params=n_params).bind(built)
    if backend is not None and backend not in BACKENDS:
        raise ParameterError(f"The 'backend' parameter of fit must be one of {list(BACKENDS)} or None. Got {backend!r}.")
    if not isinstance(callbacks, (list, tuple)) or not all(callable(c) for c in callbacks):
        hint = " (wrap one function in a list)" if callable(callbacks) else ""
        raise ParameterError(f"The 'callbacks' parameter of fit must be a list of functions callback(approx, losses, "
                             f"step). Got {callbacks!r}{hint}.")
    if callback_every is not None:
        callback_every = _positive_int(callback_every, "callback_every", "1000 (or None)")
    members = _positive_int(ensemble, "ensemble", "8")
    elbo = resolve_elbo(elbo)
    _check_data_rows(built)
    engine_name = resolve_engine(engine)
    check_elbo(elbo, engine_name, built, family)
    if members > 1 and engine_name != "jax":
        raise ParameterError(f"ensemble={members} runs the members in one vmapped JAX loop: use engine='jax' "
                             f"(or 'auto' with jax installed). Got engine={engine!r}.")
    if built.source is not None and (engine_name != "jax" or members > 1):
        raise ParameterError("This model streams X from data larger than memory (built.source): fit it with "
                             f"engine='jax' and one member. Got engine={engine!r}, ensemble={members}.")
    if engine_name == "pymc" and mc_draws > 1 and built.batch_size is not None:
        raise ParameterError(f"engine='pymc' cannot average mc_draws={mc_draws} draws per step on a minibatch model "
                             "(PyMC's loop fails on pm.Minibatch with obj_n_mc > 1); use engine='jax' or 'numba', or "
                             "mc_draws=1.")
    if engine_name == "pymc" and family.pymc_group is None:
        raise ParameterError(f"engine='pymc' runs PyMC's own loop, which has no {family.name!r} family; use "
                             "engine='jax' or 'numba', or method='advi' / 'fullrank_advi'.")
    family.check_size(n_params)
    mesh = resolve_mesh(devices, engine=engine_name, members=members, batch_rows=built.batch_size or built.n_obs)
    if members * mc_draws * n_params > MAX_PARAMETERS:
        raise ParameterError(
            f"ensemble={members} x mc_draws={mc_draws} x {n_params:,} parameters would hold "
            f"{members * mc_draws * n_params:,} numbers per step (limit {MAX_PARAMETERS:,}, "
            "bnn_ppl.compile.model.MAX_PARAMETERS); use fewer members or draws per step."
        )
    if members == 1:
        seeds: tuple[int | None, ...] = (random_seed,)
    else:
        seeds = tuple(int(s) for s in np.random.SeedSequence(random_seed).generate_state(members))
    plan = [Member(seed=seed, init_sigma=float(init_sigma)) for seed in seeds]
    return run_members(built, family, engine_name, n, plan, learning_rate=float(learning_rate),
                       lr_floor=float(lr_floor), backend=backend, mc_draws=mc_draws, progressbar=progressbar,
                       callbacks=tuple(callbacks), callback_every=callback_every, ensemble_seeds=members > 1,
                       random_seed=random_seed, mesh=mesh, elbo=elbo)


@dataclass(frozen=True)
class Member:
    """One member of a joint run: its seed and what may differ from the others.

    ``built`` (default: the run's model) gives the member's initial values and is the model of
    its own record (``fit_many`` passes the model of the member's prior width and fold);
    ``learning_rate``/``lr_floor``/``prior_scale`` default to the run's; ``rows`` are the
    training rows (indices into the run's data; None: all).
    """

    seed: int | None
    init_sigma: float = DEFAULT_INIT_SIGMA
    built: BuiltModel | None = None
    learning_rate: float | None = None
    lr_floor: float | None = None
    prior_scale: float | None = None
    rows: np.ndarray | None = None


def run_members(
    built: BuiltModel,
    family: Family,
    engine_name: str,
    n: int,
    plan: Sequence[Member],
    *,
    learning_rate: float,
    lr_floor: float,
    backend: str | None = None,
    mc_draws: int = 1,
    progressbar: bool = True,
    callbacks: tuple = (),
    callback_every: int | None = None,
    ensemble_seeds: bool = False,
    tolerate_divergence: bool = False,
    random_seed: int | None = None,
    mesh: Any = None,
    elbo: ELBO = ELBO(),
) -> FitRecord:
    """Fit the members of ``plan`` together (one member: an ordinary fit) and return the joint record.

    Arguments are validated by the callers (:func:`fit_record`, :func:`bnn_ppl.fit_many`).
    Member ``k`` starts where a one-member fit seeded with ``plan[k].seed`` on ``plan[k].built``
    starts, so its result is that fit's. ``random_seed`` is the record's (the ensemble's seed);
    with ``ensemble_seeds`` the members' seeds are recorded as ``member_seeds``.
    """
    t0 = time.perf_counter()
    members = len(plan)
    starts = [_member_start(m.built or built, family, m.seed, m.init_sigma) for m in plan]
    values = starts[0][0] if members == 1 else {
        name: np.stack([start[name] for start, _ in starts]) for name in family.param_names}
    posterior = VariationalPosterior(family, built.model, values, members=members, random_seed=starts[0][1])
    request = FitRequest(
        built=built,
        posterior=posterior,
        n=n,
        learning_rate=learning_rate,
        lr_floor=lr_floor,
        backend=backend,
        random_seed=starts[0][1],
        progressbar=progressbar,
        callbacks=callbacks,
        callback_every=callback_every,
        mc_draws=mc_draws,
        member_seeds=tuple(seed for _, seed in starts) if members > 1 else (),
        member_hyper=_member_hyper(plan, built, learning_rate=learning_rate, lr_floor=lr_floor),
        tolerate_divergence=tolerate_divergence,
        mesh=mesh,
        elbo=elbo,
    )
    setup_s = time.perf_counter() - t0
    try:
        with deferred_interrupt():  # a Ctrl-C during set-up and compilation stops after the first chunk
            run = ENGINES.get(engine_name)().run(request)
    except FitError as err:
        err.posterior = posterior  # holds the last good parameters
        err.approx = request.callback_target
        raise
    losses = np.asarray(run.losses, dtype=float)
    if not tolerate_divergence and losses.size and not np.all(np.isfinite(losses[..., -1])):
        raise FitError(
            f"The loss became {losses[..., -1]} after {losses.shape[-1]} steps; lower learning_rate "
            f"(now {learning_rate}), standardise X, or use a narrower prior."
        )
    return FitRecord(
        built=built,
        posterior=posterior,
        losses=losses if losses.ndim == 1 else losses.mean(axis=0),
        member_losses=None if losses.ndim == 1 else losses,
        engine=engine_name,
        backend=run.backend,
        learning_rate=float(learning_rate),
        n_steps=int(losses.shape[-1]),
        random_seed=random_seed,
        member_seeds=tuple(m.seed for m in plan) if ensemble_seeds else (),
        mc_draws=mc_draws,
        elbo=elbo,
        timings={
            "setup_s": setup_s,
            "compile_s": run.compile_s,
            "fit_s": run.fit_s,
            "total_s": time.perf_counter() - t0,
            "steady_steps_per_s": _steady_rate(run),
        },
        interrupted=run.interrupted,
        lr_floor=1.0 if engine_name == "pymc" else float(lr_floor),
        stop_reason=run.stop_reason,
    )


def _member_hyper(plan: Sequence[Member], built: BuiltModel, **defaults: float) -> dict[str, np.ndarray] | None:
    """The engine's per-member inputs for what the members set (None: nothing differs)."""
    if built.prior_scale_data is not None:
        defaults["prior_scale"] = float(built.prior_scale_data.get_value())
    elif any(m.prior_scale is not None for m in plan):
        raise ParameterError("Members with their own prior_scale need a model built with build_model(..., prior_scale=1.0).")
    hyper: dict[str, np.ndarray] = {}
    for name, default in defaults.items():
        given = [getattr(m, name) for m in plan]
        if any(g is not None for g in given):
            hyper[name] = np.asarray([default if g is None else g for g in given], dtype=float)
    if any(m.rows is not None for m in plan):
        rows = np.zeros((len(plan), built.n_obs), dtype=np.int64)
        n_rows = np.zeros(len(plan), dtype=np.int64)
        for k, m in enumerate(plan):
            member_rows = np.arange(built.n_obs) if m.rows is None else np.asarray(m.rows)
            rows[k, :member_rows.size], n_rows[k] = member_rows, member_rows.size
        hyper["rows"], hyper["n_rows"] = rows, n_rows
    if not hyper:
        return None
    if len(plan) == 1:
        hyper = {name: value[0] for name, value in hyper.items()}
    return hyper


def _check_data_rows(built: BuiltModel) -> None:
    """Refuse to fit when ``pm.set_data`` left other rows in the containers than the model was built on.

    The minibatch likelihood's ``total_size`` and the record's ``n_obs`` are fixed at build
    time: fitting on 123 swapped-in rows of a model built on 500 would scale the likelihood
    by the wrong factor. As many rows swapped in are new training rows, as in PyMC's own
    ``pm.fit``: the fit adopts them (``save`` and ``to_datatree`` then take them as such).
    """
    built.check_training_rows("fit", adopt=True)


def _steady_rate(run) -> float:
    """Steps/s after the first (compiling) chunk; NaN when the fit ran a single chunk."""
    steps = run.losses.shape[-1] - run.chunk_steps
    seconds = run.fit_s - run.first_chunk_s
    return float(steps / seconds) if run.chunk_steps and steps > 0 and seconds > 0 else float("nan")


def _child_seed(rng: np.random.Generator) -> int:
    return int(rng.integers(2**31 - 1))

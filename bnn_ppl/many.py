"""``fit_many``: many fits of one network in one compiled call (seeds, grids, folds).

Every setting that leaves the parameter shapes alone (seed, learning rate, step-size floor,
initial sigma, prior width, cross-validation fold) becomes one member of a single vmapped,
jitted JAX loop, the mechanism of ``fit(..., ensemble=K)``. Prior widths are an input of that
loop (``build_model(prior_scale=...)``) and folds are row weights (full batch) or row sets
(minibatch), so one compilation serves the whole grid. Member ``k`` is the fit of its setting
alone (``fit(build_model(spec_k, X[train_k], y[train_k]), random_seed=seed_k, ...)``) within
float tolerance.
"""

from __future__ import annotations

import importlib.util
import itertools
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import check_cv

from bnn_ppl.compile import BuiltModel, build_model
from bnn_ppl.compile.data import as_features, as_targets, column_names
from bnn_ppl.compile.model import MAX_PARAMETERS, spec_for_data
from bnn_ppl.errors import ParameterError, SpecError
from bnn_ppl.inference import FitRecord
from bnn_ppl.inference.families import flat_layout, resolve_family
from bnn_ppl.inference.fit import DEFAULT_LR_FLOOR, Member, check_elbo, check_options, run_members
from bnn_ppl.inference.init import DEFAULT_INIT_SIGMA
from bnn_ppl.inference.estimator import resolve_elbo
from bnn_ppl.predictive import Predictor
from bnn_ppl.result import FitResult
from bnn_ppl.spec import Network

__all__ = ["fit_many", "ManyFits", "GRID_KEYS", "MAX_FITS"]

#: What a grid may vary (nothing that changes the parameter shapes): ``fit``'s optimiser
#: settings, and the width of every weight prior, as a factor (``prior_scale``, see
#: :meth:`~bnn_ppl.Network.with_prior_scale`) or as the common ``sigma`` of the weight priors
#: (``prior_sigma``, for networks whose weight priors share one kind and width).
GRID_KEYS = ("learning_rate", "lr_floor", "init_sigma", "prior_scale", "prior_sigma")
#: Most fits one call runs (each distinct prior width and fold also builds a model, ~50 ms).
#: Raise it (``bnn_ppl.many.MAX_FITS = ...``) or split the grid for more.
MAX_FITS = 1024
_PRIOR_KEYS = ("prior_scale", "prior_sigma")


@dataclass
class ManyFits:
    """What :func:`fit_many` returns.

    Attributes
    ----------
    results : list of FitResult
        One fit per setting, in the order of ``table``'s rows; each has its own model (the
        setting's prior width, the fold's training rows) and predictor.
    settings : list of dict
        Each result's grid values, ``seed`` and ``fold`` (None without folds).
    table : pandas.DataFrame
        One row per setting: its grid values, ``seed``, ``fold``, ``neg_elbo`` (final -ELBO),
        ``diverged``, and on held-out rows (the fold's test rows, or ``X_test``/``y_test``)
        ``test_lpd``, ``test_nll`` and ``accuracy``/``ece`` (classifiers) or ``rmse``/
        ``coverage_90`` (regression).
    timings : dict
        ``setup_s`` (models, starts), ``fit_s`` (the joint run, compilation included),
        ``evaluate_s`` and ``total_s``.
    """

    results: list[FitResult]
    settings: list[dict[str, Any]]
    table: pd.DataFrame
    timings: dict[str, float] = field(default_factory=dict)

    def summary(self, metric: str = "test_nll") -> pd.DataFrame:
        """Mean and standard deviation of ``metric`` over seeds and folds, per grid setting."""
        table = self._checked(metric)
        keys = self._grid_keys()
        if not keys:
            return table[[metric]].agg(["mean", "std", "count"]).T.reset_index(drop=True)
        return table.groupby(keys, sort=False)[metric].agg(["mean", "std", "count"]).reset_index()

    def best(self, metric: str = "test_nll") -> dict[str, Any]:
        """The grid setting with the best mean ``metric`` over seeds and folds (lowest for
        ``test_nll``, ``neg_elbo``, ``ece``, ``rmse``; highest for ``test_lpd``, ``accuracy``)."""
        summary = self.summary(metric)
        order = summary["mean"].idxmax() if metric in ("test_lpd", "accuracy") else summary["mean"].idxmin()
        return {key: summary.loc[order, key] for key in self._grid_keys()}

    def _grid_keys(self) -> list[str]:
        return [key for key in GRID_KEYS if key in self.table.columns]

    def _checked(self, metric: str) -> pd.DataFrame:
        if metric not in self.table.columns:
            raise ParameterError(f"The 'metric' parameter must be one of the table's columns "
                                 f"{[c for c in self.table.columns if c not in ('seed', 'fold', 'diverged')]}. "
                                 f"Got {metric!r} instead (test metrics need folds or X_test/y_test).")
        kept = self.table[~self.table["diverged"]]
        if kept.empty:
            raise ParameterError("Every member diverged (the table's 'diverged' column); there is no best setting. "
                                 "Lower the learning rates or standardise X.")
        return kept


def fit_many(
    spec: Network,
    X: Any,
    y: Any,
    *,
    grid: Mapping[str, Sequence[Any]] | None = None,
    seeds: Iterable[int] = (0,),
    folds: Any = None,
    n: int = 30_000,
    X_test: Any = None,
    y_test: Any = None,
    batch_size: int | None = None,
    method: Any = "auto",
    learning_rate: float = 0.01,
    lr_floor: float = DEFAULT_LR_FLOOR,
    init_sigma: float = DEFAULT_INIT_SIGMA,
    mc_draws: int = 1,
    elbo: Any = None,
    draws: int = 500,
    progressbar: bool = True,
) -> ManyFits:
    """Fit every combination of ``grid`` values, ``seeds`` and ``folds`` in one compiled JAX loop.

    Parameters
    ----------
    spec : Network
        The network (as for :func:`bnn_ppl.build_model`).
    X, y : array-like
        All training rows (folds split them).
    grid : dict, optional
        Name -> values, names from :data:`GRID_KEYS`; the product of all values, ``seeds`` and
        ``folds`` is the set of fits. Unset names take the keyword arguments' values.
    seeds : iterable of int
        ``random_seed`` of each fit.
    folds : int, cross-validation splitter or iterable of (train, test) index arrays, optional
        As scikit-learn's ``cv`` (:func:`sklearn.model_selection.check_cv`: an int is a
        ``StratifiedKFold`` for classifiers, ``KFold`` otherwise). Each fold's fit trains on its
        training rows and is scored on its test rows.
    n : int
        Optimisation steps of every fit.
    X_test, y_test : array-like, optional
        Held-out rows scoring every fit when there are no folds.
    batch_size, method, learning_rate, lr_floor, init_sigma, mc_draws, elbo
        As for :func:`bnn_ppl.build_model` and :func:`bnn_ppl.fit`.
    draws : int
        Posterior draws for the held-out scores.
    progressbar : bool

    Returns
    -------
    ManyFits

    Raises
    ------
    ParameterError
        For an unknown grid name, an empty grid entry or seed list, or more members than fit
        in memory (members x mc_draws x parameters over ``MAX_PARAMETERS``).

    Examples
    --------
    >>> import numpy as np, bnn_ppl as bp
    >>> X = np.random.default_rng(0).normal(size=(60, 2)); y = (X[:, 0] > 0).astype(int)
    >>> spec = bp.Network([bp.Dense(3), bp.Dense(1, "identity")], bp.Bernoulli())
    >>> many = bp.fit_many(spec, X, y, grid={"prior_sigma": [0.5, 2.0]}, seeds=[0, 1], folds=3,
    ...                    n=1_000, progressbar=False)
    >>> len(many.results), list(many.table.columns[:3])
    (12, ['prior_sigma', 'seed', 'fold'])
    >>> sorted(many.best("test_nll"))
    ['prior_sigma']
    """
    t0 = time.perf_counter()
    if not isinstance(spec, Network):
        raise SpecError(f"fit_many needs a Network spec. Got {type(spec).__name__}; see bnn_ppl.load_spec.")
    if importlib.util.find_spec("jax") is None:
        raise ParameterError("fit_many runs its fits in one vmapped JAX loop; install JAX (pip install 'bnn_ppl[jax]').")
    if (X_test is None) != (y_test is None):
        raise ParameterError("fit_many got only one of X_test and y_test; pass both to score held-out rows, or neither.")
    grid = _check_grid(grid)
    seeds = _check_seeds(seeds)
    n, mc_draws = check_options(n=n, learning_rate=learning_rate, lr_floor=lr_floor, init_sigma=init_sigma,
                                mc_draws=mc_draws, caller="fit_many")
    elbo = resolve_elbo(elbo)
    X_arr = as_features(X, spec.input_shape)
    features = column_names(X)  # a DataFrame's named columns: held-out DataFrames are checked against them
    spec = spec_for_data(spec, X_arr)
    y_arr = as_targets(y, spec.likelihood, X_arr.shape[0])
    splits = _splits(folds, X_arr, y_arr, spec.likelihood.is_classifier)
    count = math.prod(len(values) for values in grid.values()) * len(seeds) * max(1, len(splits))  # Python ints
    if count > MAX_FITS:
        raise ParameterError(f"fit_many would run {count:,} fits (grid x seeds x folds), over bnn_ppl.many.MAX_FITS = "
                             f"{MAX_FITS:,}; split the grid over several calls, or raise the limit.")
    factors = _prior_factors(spec, grid)
    base = build_model(spec, X_arr, y_arr, batch_size, feature_names=features, prior_scale=1.0 if factors else None)
    n_params = sum(slc.stop - slc.start for _, slc, _, _ in flat_layout(base.model).values())
    family = resolve_family(method, n_params=n_params).bind(base)
    family.check_size(n_params)
    check_elbo(elbo, "jax", base, family)
    names = list(grid)
    combos = list(itertools.product(*(grid[name] for name in names)))
    settings = [{**dict(zip(names, combo, strict=True)), "seed": seed, "fold": fold}
                for combo in combos for seed in seeds for fold in (range(len(splits)) if splits else [None])]
    members = len(settings)
    if members * mc_draws * n_params > MAX_PARAMETERS:
        raise ParameterError(
            f"{members} fits x mc_draws={mc_draws} x {n_params:,} parameters would hold {members * mc_draws * n_params:,} "
            f"numbers per step (limit {MAX_PARAMETERS:,}, bnn_ppl.compile.model.MAX_PARAMETERS); fit fewer settings "
            "per call."
        )
    models: dict[tuple, BuiltModel] = {}

    def model_for(setting: dict) -> BuiltModel:
        factor = _factor(setting, factors)
        key = (factor, setting["fold"])
        if key not in models:
            rows = None if setting["fold"] is None else splits[setting["fold"]][0]
            member_spec = spec if factor == 1.0 else spec.with_prior_scale(factor)
            models[key] = build_model(member_spec, X_arr if rows is None else X_arr[rows],
                                      y_arr if rows is None else y_arr[rows], batch_size, feature_names=features)
        return models[key]

    plan = [
        Member(
            seed=s["seed"], init_sigma=float(s.get("init_sigma", init_sigma)), built=model_for(s),
            learning_rate=s.get("learning_rate"), lr_floor=s.get("lr_floor"),
            prior_scale=_factor(s, factors) if factors else None,
            rows=None if s["fold"] is None else splits[s["fold"]][0],
        )
        for s in settings
    ]
    setup_s = time.perf_counter() - t0
    joint = run_members(base, family, "jax", n, plan, learning_rate=float(learning_rate), lr_floor=float(lr_floor),
                        mc_draws=mc_draws, progressbar=progressbar, tolerate_divergence=True, elbo=elbo)
    fit_s = time.perf_counter() - t0 - setup_s
    results = [_member_result(joint, k, member, learning_rate, lr_floor) for k, member in enumerate(plan)]
    t_eval = time.perf_counter()
    _share_predictor(results)
    rows = [_row(result, setting, splits, X_arr, y_arr, X_test, y_test, draws)
            for result, setting in zip(results, settings, strict=True)]
    timings = {"setup_s": setup_s, "fit_s": fit_s, "evaluate_s": time.perf_counter() - t_eval,
               "total_s": time.perf_counter() - t0}
    table = pd.DataFrame(rows)
    if not splits:
        table = table.drop(columns="fold")
    return ManyFits(results=results, settings=settings, table=table, timings=timings)


def _check_grid(grid: Mapping[str, Sequence[Any]] | None) -> dict[str, list[Any]]:
    if grid is None:
        return {}
    if not isinstance(grid, Mapping):
        raise ParameterError(f"The 'grid' parameter of fit_many must be a dict of name -> values. Got {type(grid).__name__}.")
    out = {}
    for name, values in grid.items():
        if name not in GRID_KEYS:
            raise ParameterError(f"The grid name {name!r} is not one fit_many can vary in one compiled loop; choose from "
                                 f"{list(GRID_KEYS)} (other settings change the parameter shapes: one call each).")
        values = [values] if isinstance(values, (int, float)) else list(values)
        if not values:
            raise ParameterError(f"The grid entry {name!r} is empty; give at least one value.")
        for value in values:
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not 0 < value < np.inf:
                raise ParameterError(f"The grid entry {name!r} must hold positive numbers. Got {value!r}.")
            if name == "lr_floor" and value > 1:
                raise ParameterError(f"The grid entry 'lr_floor' must hold values in (0, 1]. Got {value!r}.")
        out[name] = [float(value) for value in values]
    if all(key in out for key in _PRIOR_KEYS):
        raise ParameterError("Give the prior width as 'prior_scale' or as 'prior_sigma', not both.")
    return out


def _check_seeds(seeds: Iterable[int]) -> list[int]:
    seeds = [seeds] if isinstance(seeds, (int, np.integer)) else list(seeds)
    if not seeds:
        raise ParameterError("The 'seeds' parameter of fit_many is empty; give at least one seed, e.g. range(4).")
    for seed in seeds:
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ParameterError(f"The 'seeds' parameter of fit_many must hold non-negative integers. Got {seed!r}.")
    return [int(seed) for seed in seeds]


def _splits(folds: Any, X: np.ndarray, y: np.ndarray, classifier: bool) -> list[tuple[np.ndarray, np.ndarray]]:
    if folds is None:
        return []
    try:
        cv = check_cv(folds, y, classifier=classifier)
        pairs = list(cv.split(X, y))
    except (TypeError, ValueError) as err:
        raise ParameterError(f"The 'folds' parameter of fit_many must be an int, a scikit-learn splitter or (train, "
                             f"test) index pairs: {err}") from None
    if not pairs:
        raise ParameterError("The 'folds' parameter of fit_many gave no folds (an empty list, or a generator already "
                             "used up); pass folds=None for no cross-validation.")
    splits = [(_fold_rows(train, X.shape[0], i, "training"), _fold_rows(test, X.shape[0], i, "test"))
              for i, (train, test) in enumerate(pairs)]
    for i, (train, test) in enumerate(splits):
        if train.size == 0 or test.size == 0:
            raise ParameterError(f"Fold {i} has {train.size} training and {test.size} test rows; both must be non-empty.")
    return splits


def _fold_rows(rows: Any, n: int, i: int, which: str) -> np.ndarray:
    """Fold ``i``'s sorted row indices from indices or a boolean mask over the ``n`` rows."""
    rows = np.asarray(rows)
    if rows.dtype == bool:
        if rows.shape != (n,):
            raise ParameterError(f"Fold {i}'s {which} mask has shape {rows.shape}; a boolean mask needs one entry per "
                                 f"row of X ({n},).")
        return np.flatnonzero(rows)
    if rows.ndim != 1 or (rows.size and not np.issubdtype(rows.dtype, np.integer)):
        raise ParameterError(f"Fold {i}'s {which} rows must be a 1-D array of integer row indices or a boolean mask. "
                             f"Got dtype {rows.dtype}, shape {rows.shape}.")
    rows = rows.astype(np.int64)
    if rows.size and (rows.min() < -n or rows.max() >= n):
        raise ParameterError(f"Fold {i}'s {which} rows hold indices from {rows.min()} to {rows.max()}; X has {n} rows "
                             f"(indices 0 to {n - 1}).")
    return np.sort(rows % n)


def _prior_factors(spec: Network, grid: dict[str, list[float]]) -> dict[float, float]:
    """Grid value -> factor on every weight prior's width (empty when the grid leaves priors alone)."""
    if "prior_scale" in grid:
        return {value: value for value in grid["prior_scale"]}
    if "prior_sigma" not in grid:
        return {}
    priors = {p.prior for layer in spec.resolve() for p in layer.params if p.role == "weight"}
    widths = {getattr(prior, name) for prior in priors for name in prior.spread}
    kinds = {type(prior) for prior in priors}
    if len(kinds) != 1 or len(widths) != 1 or len(next(iter(priors)).spread) != 1:
        raise ParameterError(
            f"grid={{'prior_sigma': ...}} needs weight priors of one kind and one width; this network has {sorted(map(repr, priors))}. "
            "Use grid={'prior_scale': [...]} (a factor on every weight prior's width)."
        )
    width = widths.pop()
    return {value: value / width for value in grid["prior_sigma"]}


def _factor(setting: dict, factors: dict[float, float]) -> float:
    for key in _PRIOR_KEYS:
        if key in setting:
            return factors[setting[key]]
    return 1.0


def _member_result(joint: FitRecord, k: int, member: Member, learning_rate: float, lr_floor: float) -> FitResult:
    built = member.built
    losses = joint.member_losses[k] if joint.member_losses is not None else joint.losses
    return FitResult.of(FitRecord(
        built=built, posterior=joint.posterior.member(k, built.model), losses=losses, engine=joint.engine,
        backend=joint.backend, learning_rate=float(member.learning_rate or learning_rate), n_steps=joint.n_steps,
        random_seed=member.seed, timings=dict(joint.timings), interrupted=joint.interrupted,
        lr_floor=float(member.lr_floor or lr_floor), stop_reason=joint.stop_reason, mc_draws=joint.mc_draws,
        elbo=joint.elbo,
    ))


def _share_predictor(results: list[FitResult]) -> None:
    """Compile one predictor; every other result's default predictor shares its functions."""
    first = results[0].predictor()
    for result in results[1:]:
        result._predictors.setdefault((None, "auto"), Predictor(first.sampler.for_result(result), result.built.spec,
                                                                   feature_names=result.built.feature_names))


def _row(result: FitResult, setting: dict, splits: list, X: np.ndarray, y: np.ndarray, X_test: Any, y_test: Any,
         draws: int) -> dict[str, Any]:
    finite = np.isfinite(result.losses)
    row = {**setting, "neg_elbo": result.final_loss if finite.all() else float("nan"), "diverged": not finite.all()}
    if setting["fold"] is not None:
        test = splits[setting["fold"]][1]
        held_out = (X[test], y[test])
    elif X_test is not None and y_test is not None:
        held_out = (X_test, y_test)
    else:
        return row
    classifier = result.spec.likelihood.is_classifier
    metrics = ("test_lpd", "test_nll", "accuracy", "ece") if classifier else ("test_lpd", "test_nll", "rmse", "coverage_90")
    if row["diverged"]:
        return {**row, **dict.fromkeys(metrics, float("nan"))}
    q = result.evaluate(*held_out, draws=draws, random_seed=0)
    values = (q.lpd, q.nll, q.accuracy, q.ece) if classifier else (q.lpd, q.nll, q.rmse, q.coverage.get(0.9))
    return {**row, **dict(zip(metrics, values, strict=True))}

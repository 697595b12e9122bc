"""Export a fit to an ArviZ ``xarray.DataTree`` (posterior, predictive groups, observed data)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import xarray as xr

from bnn_ppl.compile.data import as_features, as_targets
from bnn_ppl.compile.likelihoods import OBSERVED_NAME
from bnn_ppl.compile.streamed import is_streamed
from bnn_ppl.errors import ParameterError
from bnn_ppl.predictive.predictor import check_draws
from bnn_ppl.seeds import check_seed
from bnn_ppl.spec import Bernoulli, Categorical

__all__ = ["to_datatree", "posterior_group", "sample_outcomes", "log_likelihood_of", "layer_params", "LAYERS_ATTR"]

#: Posterior attribute holding ``{layer: [parameter variable, ...]}`` as JSON (read by ``plot_weights``).
LAYERS_ATTR = "bnn_ppl_layers"


def layer_params(layers: Any) -> dict[str, list[str]]:
    """Resolved layers -> ``{layer: [parameter variable, ...]}`` (layers without parameters left out)."""
    return {layer.name: [p.var_name for p in layer.params] for layer in layers if layer.params}


def _named_values_fn(result: Any) -> tuple[list[str], Any]:
    """Compiled map from flat draws (draws, D) to every free variable and deterministic (constrained), cached."""
    cache = result._predictors
    if "named_values" not in cache:
        import pytensor
        import pytensor.tensor as pt
        from pytensor.graph.replace import graph_replace, vectorize_graph

        from bnn_ppl.compile.data import float_dtype

        model = result.built.model
        theta = pt.vector("theta", dtype=float_dtype())
        by_name = {v.name: v for v in model.value_vars}
        replacements = {by_name[name]: theta[slc].reshape(shape).astype(dtype)
                        for name, (_, slc, shape, dtype) in result.posterior.layout.items()}
        variables = [*model.free_RVs, *model.deterministics]
        graphs = graph_replace(model.replace_rvs_by_values(variables), replacements, strict=False)
        thetas = pt.matrix("thetas", dtype=float_dtype())
        fn = pytensor.function([thetas], vectorize_graph(graphs, {theta: thetas}))
        cache["named_values"] = ([v.name for v in variables], fn)
    return cache["named_values"]


def posterior_group(result: Any, draws: int, rng: np.random.Generator) -> xr.Dataset:
    """The ``posterior`` group: ``draws`` per chain, one chain per ensemble member, PyMC's dims.

    Every family exports the same way: flat draws from q mapped through the model's own
    transforms (constrained values of every free variable and deterministic).
    """
    posterior = result.posterior
    model = result.built.model
    thetas = posterior.draw(draws, rng, per_member=True).astype(result.built.X_data.dtype)
    names, fn = _named_values_fn(result)
    values = fn(thetas)
    chains = posterior.members
    data = {}
    for name, value in zip(names, values, strict=True):
        value = np.asarray(value)
        if value.ndim == 0 or value.shape[0] != thetas.shape[0]:  # a constant (a known noise sigma)
            value = np.broadcast_to(value, (thetas.shape[0], *value.shape))
        value = value.reshape(chains, draws, *value.shape[1:])
        dims = ["chain", "draw", *model.named_vars_to_dims.get(name, ())]
        dims += [f"{name}_dim_{i}" for i in range(len(dims), value.ndim)]
        coords = {dim: list(model.coords[dim]) for dim in dims[2:] if dim in model.coords}
        data[name] = xr.DataArray(value, dims=dims, coords={"chain": np.arange(chains), "draw": np.arange(draws),
                                                             **coords})
    return xr.Dataset(data)


def sample_outcomes(likelihood: Any, param: np.ndarray, rng: np.random.Generator, sigma: np.ndarray | None = None):
    """Draw observations y from likelihood-parameter draws (draws, rows[, classes])."""
    if isinstance(likelihood, Bernoulli):
        return (rng.random(param.shape) < param).astype(np.int64)
    if isinstance(likelihood, Categorical):
        cum = np.cumsum(param, axis=-1)
        u = rng.random(param.shape[:-1] + (1,)) * cum[..., -1:]
        return np.minimum((u > cum).sum(axis=-1), param.shape[-1] - 1).astype(np.int64)
    return param + rng.standard_normal(param.shape) * np.asarray(sigma).reshape(-1, 1)


def _group(name: str, values: np.ndarray, obs_dim: str, obs_coords: Any) -> xr.Dataset:
    da = xr.DataArray(values[None], dims=("chain", "draw", obs_dim),
                      coords={"chain": [0], "draw": np.arange(values.shape[0]), obs_dim: obs_coords})
    return xr.Dataset({name: da})


def log_likelihood_of(likelihood: Any, param: np.ndarray, y: np.ndarray, sigma: np.ndarray | None = None) -> np.ndarray:
    """(draws, rows) pointwise ``log p(y_i | theta_s)`` from likelihood-parameter draws."""
    if isinstance(likelihood, Bernoulli):
        p = np.clip(param, 1e-300, 1.0)
        q = np.clip(1.0 - param, 1e-300, 1.0)
        return np.where(np.asarray(y) == 1, np.log(p), np.log(q))
    if isinstance(likelihood, Categorical):
        picked = np.take_along_axis(param, np.asarray(y, dtype=np.int64)[None, :, None], axis=-1)[..., 0]
        return np.log(np.clip(picked, 1e-300, 1.0))
    s = np.asarray(sigma, dtype=float).reshape(-1, 1)
    return -0.5 * ((np.asarray(y, dtype=float) - param) / s) ** 2 - np.log(s) - 0.5 * np.log(2 * np.pi)


def to_datatree(result: Any, draws: int = 1000, X: Any = None, y: Any = None, *, random_seed: Any = None,
                log_likelihood: bool = False):
    """ArviZ ``DataTree`` of a fit.

    Groups: ``posterior`` (every parameter with its layer's named dims: ``dense_0_in``/``dense_0_out``,
    ``conv_0_out``/``conv_0_in``/``conv_0_kh``/``conv_0_kw``, ...),
    ``observed_data`` and ``constant_data``, plus

    - ``X`` is None: ``posterior_predictive`` at the training inputs (against the training y);
    - ``X`` and ``y`` given: ``posterior_predictive`` at ``X`` with ``observed_data`` = ``y``
      (a held-out check);
    - ``X`` alone: ``predictions`` at ``X`` and ``predictions_constant_data``.

    With ``log_likelihood=True`` a ``log_likelihood`` group holds ``log p(y_i | theta_s)`` of the
    observed rows for the predictive draws (what ``az.loo`` and ``az.compare`` read; like PyMC's
    ``idata_kwargs={"log_likelihood": True}``).

    For a model built on a streamed ``X`` (memory-mapped, dask or zarr), ``X=None`` means every
    training row, read block by block; a streamed ``X`` is not copied into ``constant_data``.

    The posterior and the predictive draws are independent draws from the approximation.

    Parameters
    ----------
    result : FitResult
    draws : int
        Posterior draws, a positive integer (memory grows as draws x parameters).
    X, y : array-like, optional
        Inputs (and targets) for the predictive groups.
    random_seed : int, optional
    log_likelihood : bool
        Add the pointwise ``log_likelihood`` group (needs observed targets: not with ``X`` alone).

    Raises
    ------
    ParameterError
        When ``draws`` is not a positive integer (booleans are refused, numpy integers accepted),
        ``y`` comes without ``X``, or ``log_likelihood`` is asked for ``X`` without ``y``.

    Examples
    --------
    >>> import arviz as az
    >>> dt = result.to_datatree(draws=100, random_seed=0)
    >>> dict(dt.posterior["dense_0_w"].sizes)
    {'chain': 1, 'draw': 100, 'dense_0_in': 2, 'dense_0_out': 5}
    >>> az.summary(dt, var_names=["dense_0_w"]).shape[0]
    10
    """
    draws = check_draws(draws, "to_datatree")
    rng = np.random.default_rng(check_seed(random_seed, "to_datatree", generator=True))
    built = result.built
    spec = built.spec
    dt = xr.DataTree()
    dt["posterior"] = posterior_group(result, draws, np.random.default_rng(int(rng.integers(2**31 - 1))))
    dt["posterior"].attrs[LAYERS_ATTR] = json.dumps(layer_params(built.layers))
    if not isinstance(log_likelihood, bool):
        raise ParameterError(f"The 'log_likelihood' parameter of to_datatree must be True or False. Got "
                             f"{log_likelihood!r} instead.")
    if log_likelihood and X is not None and y is None:
        raise ParameterError("to_datatree(log_likelihood=True) scores observed targets: pass y with X, or neither.")
    if X is None and y is not None:
        raise ParameterError("to_datatree got y without X; pass the inputs too (X=..., y=...) for a held-out "
                             "posterior_predictive, or neither for the training data.")
    if X is None:
        built.check_training_rows("to_datatree without X", "; or pass held-out rows: to_datatree(X=..., y=...)")
    if X is None and built.source is not None:  # a streamed X: every training row, read by blocks
        train_X, train_y = built.source.array, built.source_y
    else:
        train_X, train_y = np.asarray(built.X_data.get_value()), built.targets()
    held_out = X is not None and y is not None
    if X is None:
        Xp, yp = train_X, train_y
    elif is_streamed(X):
        Xp = X
        yp = as_targets(y, spec.likelihood, int(X.shape[0])) if y is not None else None
    else:
        Xp = as_features(X, spec.input_shape)
        yp = as_targets(y, spec.likelihood, Xp.shape[0]) if y is not None else None
    predictor = result.predictor()
    seed = int(rng.integers(2**31 - 1))
    param = predictor.sample(Xp, draws=draws, random_seed=seed)
    sigma = None if spec.likelihood.is_classifier else predictor.sample_noise(draws=draws, random_seed=seed)
    outcomes = sample_outcomes(spec.likelihood, param, rng, sigma)
    obs_coords = np.arange(Xp.shape[0])
    x_dims = built.input_dims
    x_coords = {"obs": obs_coords, **{dim: list(built.model.coords[dim]) for dim in x_dims}}
    # a streamed X (larger than memory) is not copied into the tree
    inputs = None if is_streamed(Xp) else xr.Dataset({"X": xr.DataArray(Xp, dims=("obs", *x_dims), coords=x_coords)})
    if X is not None and y is None:
        dt["predictions"] = _group(OBSERVED_NAME, outcomes, "obs", obs_coords)
        if inputs is not None:
            dt["predictions_constant_data"] = inputs
        return dt
    dt["posterior_predictive"] = _group(OBSERVED_NAME, outcomes, "obs", obs_coords)
    observed = yp if held_out else train_y
    if log_likelihood:
        dt["log_likelihood"] = _group(OBSERVED_NAME, log_likelihood_of(spec.likelihood, param, observed, sigma),
                                      "obs", obs_coords)
    dt["observed_data"] = xr.Dataset({OBSERVED_NAME: xr.DataArray(np.asarray(observed), dims=("obs",), coords={"obs": obs_coords})})
    if inputs is not None:
        dt["constant_data"] = inputs
    return dt

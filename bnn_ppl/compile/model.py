"""``build_model``: a spec plus data -> a real ``pm.Model`` with named dims and swappable data."""

from __future__ import annotations

from typing import Any

import numpy as np
import pymc as pm

from bnn_ppl.compile.built import BuiltModel, input_dims
from bnn_ppl.compile.data import as_features, as_targets, check_class_names, column_names, float_dtype
from bnn_ppl.compile.likelihoods import build_likelihood
from bnn_ppl.compile.priors import build_weights
from bnn_ppl.compile.start import draw_start
from bnn_ppl.compile.streamed import RowSource, is_streamed, row_source
from bnn_ppl.errors import DataError, SpecError
from bnn_ppl.seeds import check_seed
from bnn_ppl.spec import Network, ResolvedLayer

__all__ = ["BuiltModel", "build_model", "input_dims", "REFERENCE_ROWS", "PRIOR_SCALE_NAME"]

#: Training rows whose statistics layers such as BatchNorm use at prediction (see ForwardContext).
REFERENCE_ROWS = 256
#: Name of the ``pm.Data`` scalar of ``build_model(prior_scale=...)``.
PRIOR_SCALE_NAME = "prior_scale"
#: Default upper bound on a network's parameters (``build_model(max_parameters=...)`` raises it).
MAX_PARAMETERS = 50_000_000
#: Copies of the parameter vector a mean-field fit holds (mu, rho, their Adam moments and gradients).
_FIT_COPIES = 8


def _label_storage(labels: np.ndarray) -> np.ndarray:
    """Store class labels in floatX (as the seed notebook does), refusing labels it cannot hold exactly.

    A float container takes both ``pm.set_data({"y": int_labels})`` and integral float labels
    (an intX container refuses floats with PyTensor's "cannot store a value of dtype float64");
    the likelihood casts the observed values to its integer type.
    """
    dtype = np.dtype(float_dtype())
    exact = 2 ** (np.finfo(dtype).nmant + 1)
    if labels.size and (labels.max() > exact or labels.min() < 0):
        raise DataError(f"Labels up to {labels.max()} do not fit floatX {dtype} exactly; re-encode them as 0..K-1.")
    return labels.astype(dtype)


def build_model(
    spec: Network,
    X: Any,
    y: Any,
    batch_size: int | None = None,
    *,
    feature_names: list[str] | None = None,
    class_names: list[str] | None = None,
    random_seed: int | None = 0,
    max_parameters: int = MAX_PARAMETERS,
    n_obs: int | None = None,
    prior_scale: float | None = None,
) -> BuiltModel:
    """Compile ``spec`` and data into a ``pm.Model``.

    Parameters
    ----------
    spec : Network
        The network spec.
    X : array-like of shape (n, d) or (n, *input_shape)
        Training inputs (numpy, pandas or nested lists); images as (n, channels, height, width).
        With a ``batch_size``, a memory-mapped array (``np.load(path, mmap_mode="r")``), a dask
        or a zarr array stays where it is: the JAX engine streams each chunk's minibatches from
        it (``built.source``), in bounded memory.
    y : array-like of shape (n,)
        Targets: 0/1 for Bernoulli, 0..K-1 for Categorical, reals for Normal.
    batch_size : int, optional
        Minibatch size; the likelihood then carries ``total_size=n``.
    feature_names, class_names : list of str, optional
        Coordinate labels for flat input features (``dense_0_in``) and the classes.
    random_seed : int, optional
        Seeds the symmetry-breaking initial values stored as the RVs' ``initval``, so that
        ``pm.fit``, ``pm.sample`` and ``pm.find_MAP`` on ``built.model`` start off the saddle
        where every weight is 0 (``bnn_ppl.fit`` draws its own start from its ``random_seed``).
    max_parameters : int
        Refuse networks with more parameters (checked before anything is allocated; a fit
        holds about eight copies of them).
    n_obs : int, optional
        Rows of the whole training set when ``X`` holds fewer of them (a model file saved
        without its data is rebuilt on stand-in rows for prediction): the minibatch
        likelihood's ``total_size`` and ``built.n_obs``. Default: the rows of ``X``. ``fit``
        refuses a model whose containers hold other than ``n_obs`` rows.
    prior_scale : float, optional
        Add a ``pm.Data`` scalar ``"prior_scale"`` (starting at this value) that multiplies the
        width of every weight prior: after ``pm.set_data({"prior_scale": c})`` the model is that
        of ``spec.with_prior_scale(c)`` (initial values aside), without a new graph.
        :func:`bnn_ppl.fit_many` fits several widths in one compiled loop this way.

    Returns
    -------
    BuiltModel

    Examples
    --------
    >>> import numpy as np, bnn_ppl as bp
    >>> spec = bp.Network([bp.Dense(3), bp.Dense(1, "identity")], bp.Bernoulli())
    >>> built = bp.build_model(spec, np.random.default_rng(0).normal(size=(20, 2)), np.arange(20) % 2)
    >>> built.model.coords["dense_0_in"], [rv.name for rv in built.model.free_RVs]
    ((0, 1), ['dense_0_w', 'dense_0_b', 'dense_1_w', 'dense_1_b'])
    """
    if not isinstance(spec, Network):
        raise SpecError(f"build_model needs a Network spec. Got {type(spec).__name__}; see bnn_ppl.load_spec.")
    random_seed = check_seed(random_seed, "build_model")
    if feature_names is None:
        feature_names = column_names(X)  # a DataFrame's named columns
    source = None
    if is_streamed(X) and batch_size is not None:
        # larger than memory: the containers hold the first batch_size rows as a stand-in
        source = row_source(X, spec.input_shape, float_dtype())
        if n_obs is not None:
            raise DataError("n_obs is set from a streamed X's rows; leave it unset.")
        n_obs = source.n_rows
        all_targets = as_targets(np.asarray(y), spec.likelihood, source.n_rows)
        stand_in = np.arange(min(int(batch_size), source.n_rows)) if _is_count(batch_size) else np.arange(1)
        X, y = source.read(stand_in), all_targets[stand_in]
    X_arr = as_features(X, spec.input_shape)
    spec = spec_for_data(spec, X_arr)
    layers = spec.resolve()
    _check_size(layers, max_parameters, X_arr.dtype.itemsize)
    y_arr = as_targets(y, spec.likelihood, X_arr.shape[0])
    n = X_arr.shape[0] if n_obs is None else _check_n_obs(n_obs, X_arr.shape[0])
    if spec.likelihood.is_classifier:
        y_arr = _label_storage(y_arr)
    if batch_size is not None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise DataError(f"The 'batch_size' parameter must be a positive integer or None. Got {batch_size!r}.")
        if batch_size > n:
            raise DataError(f"batch_size={batch_size} is larger than the {n} training rows; lower it or use None.")
        if batch_size > X_arr.shape[0]:
            raise DataError(f"batch_size={batch_size} is larger than the {X_arr.shape[0]} rows X holds; pass at "
                            "least batch_size stand-in rows.")
        batch_size = int(batch_size)
    x_dims = input_dims(layers)
    coords: dict[str, Any] = {dim: list(range(size)) for dim, size in zip(x_dims, X_arr.shape[1:], strict=True)}
    if feature_names is not None and len(x_dims) == 1:
        if len(feature_names) != X_arr.shape[1]:
            raise DataError(f"feature_names has {len(feature_names)} names for {X_arr.shape[1]} features.")
        coords[x_dims[0]] = list(feature_names)
    for layer in layers:
        for dim, size in layer.dim_sizes().items():
            coords.setdefault(dim, list(range(size)))
    last = layers[-1]
    out_dims = last.layer.output_dims(last.name, last.out_shape)
    if class_names is not None:
        check_class_names(class_names, spec.likelihood)
    if out_dims and class_names is not None and len(class_names) == last.out_shape[0]:
        coords[out_dims[0]] = list(class_names)

    params: dict[str, dict[str, Any]] = {}
    init_scales: dict[str, float] = {}
    init_locs: dict[str, float] = {}
    shapes: dict[str, tuple[int, ...]] = {}
    with pm.Model(coords=coords) as model:
        X_data = pm.Data("X", X_arr, dims=("obs", *x_dims))
        y_data = pm.Data("y", y_arr, dims=("obs",))
        scale_data = None if prior_scale is None else pm.Data(PRIOR_SCALE_NAME, _check_prior_scale(prior_scale))
        for layer in layers:
            params[layer.name] = {}
            for p in layer.params:
                scale = scale_data if p.role == "weight" and scale_data is not None else 1.0
                try:
                    nodes = build_weights(p.prior, p.var_name, p.dims, p.fan_in, in_axis=p.in_axis, scale=scale)
                except ValueError as err:
                    if "already exists" not in str(err):
                        raise
                    if scale_data is not None and PRIOR_SCALE_NAME in str(err):
                        raise SpecError(
                            f"Layer {layer.name!r}: its {p.key!r} parameter makes the PyMC variable {p.var_name}, the "
                            f"name of build_model's own pm.Data {PRIOR_SCALE_NAME!r} (prior_scale=...). Rename the "
                            "layer."
                        ) from None
                    raise SpecError(
                        f"Layer {layer.name!r}: its {p.key!r} parameter makes the PyMC variable {p.var_name} "
                        f"(and its prior's {p.var_name}_*), a name another layer's parameters already use ({err}). "
                        "Rename one of the two layers."
                    ) from None
                params[layer.name][p.key] = nodes.value
                if p.role == "bias":
                    continue  # biases and shifts start at 0, their PyMC initial point
                # weights: random means that break the symmetry between units; scales: their centre
                scales = nodes.init_scales if p.role == "weight" else dict.fromkeys(nodes.init_scales, 0.0)
                init_scales.update(scales)
                init_locs.update(nodes.init_locs)
                shapes.update(dict.fromkeys(scales, p.shape))
        _set_initvals(model, init_scales, init_locs, shapes, random_seed)
        built = BuiltModel(
            spec=spec,
            model=model,
            layers=layers,
            X_data=X_data,
            y_data=y_data,
            output=None,  # set below
            params=params,
            init_scales=init_scales,
            init_locs=init_locs,
            n_obs=n,
            batch_size=batch_size,
            feature_names=list(coords[x_dims[0]]) if len(x_dims) == 1 else None,
            class_names=list(class_names) if class_names is not None else None,
            reference_X=(_reference_rows(X_arr if source is None else source, random_seed)
                         if spec.uses_batch_statistics else None),
            prior_scale_data=scale_data,
            source=source,
            source_y=None if source is None else all_targets,
        )
        if batch_size is None:
            x_in, y_in, total, dims = X_data, y_data, None, "obs"
        else:
            x_in, y_in = pm.Minibatch(X_data, y_data, batch_size=batch_size)
            total, dims = n, None
        built.output = built.forward(x_in)
        build_likelihood(spec.likelihood, built.output, y_in, total, dims)
    built.built_rv_names = tuple(rv.name for rv in model.free_RVs)
    built.built_var_names = tuple(model.named_vars)
    built.adopt_training_rows()
    return built


def spec_for_data(spec: Network, X: np.ndarray) -> Network:
    """``spec`` with its input shape set from ``X`` (rows first) when unset, checked against the layers."""
    try:
        if spec.input_shape is None:
            spec = spec.with_input_shape(X.shape[1:]) if X.ndim > 2 else spec.with_input_dim(X.shape[1])
        spec.resolve()
    except SpecError as err:
        raise DataError(f"X has examples of shape {X.shape[1:]}, which the network cannot take: {err}") from None
    return spec


def _check_prior_scale(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not 0 < value < np.inf:
        raise DataError(f"The 'prior_scale' parameter of build_model must be a positive number. Got {value!r} instead.")
    return float(value)


def _check_n_obs(n_obs: Any, rows: int) -> int:
    if isinstance(n_obs, bool) or not isinstance(n_obs, (int, np.integer)) or n_obs < rows:
        raise DataError(f"The 'n_obs' parameter of build_model must be an integer >= the {rows} rows of X. "
                        f"Got {n_obs!r} instead.")
    return int(n_obs)


def _check_size(layers: list[ResolvedLayer], max_parameters: int, itemsize: int) -> None:
    total = sum(layer.n_params for layer in layers)
    if total > max_parameters:
        biggest = max(layers, key=lambda layer: layer.n_params)
        gib = total * itemsize * _FIT_COPIES / 2**30
        raise SpecError(
            f"The network has {total:,} parameters ({biggest.name}: {biggest.n_params:,}); fitting it needs about "
            f"{gib:,.1f} GiB for the parameters alone, over the limit of {max_parameters:,} parameters. Use smaller "
            "layers, or pass build_model(..., max_parameters=N) to raise the limit."
        )


def _reference_rows(X: Any, random_seed: int | None) -> np.ndarray:
    rng = np.random.default_rng([random_seed or 0, 1])
    n = X.n_rows if isinstance(X, RowSource) else X.shape[0]
    rows = np.sort(rng.choice(n, size=min(REFERENCE_ROWS, n), replace=False))
    return X.read(rows) if isinstance(X, RowSource) else X[rows].copy()


def _is_count(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1


def _set_initvals(model: pm.Model, scales: dict, locs: dict, shapes: dict, random_seed: int | None) -> None:
    """Store seeded random starting values as the RVs' ``initval`` (breaks the hidden-unit symmetry)."""
    rng = np.random.default_rng(random_seed)
    for name, scale in scales.items():
        rv = model[name]
        model.set_initval(rv, draw_start(rng, shapes[name], scale, locs.get(name, 0.0)).astype(rv.dtype))

"""``build_model``: a spec plus data -> a real ``pm.Model`` with named dims and swappable data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from pymc.pytensorf import intX as to_intX

from bnn_ppl.compile.activations import apply_activation
from bnn_ppl.compile.data import as_features, as_targets
from bnn_ppl.compile.likelihoods import OBSERVED_NAME, build_likelihood, output_parameter
from bnn_ppl.compile.priors import build_weights
from bnn_ppl.errors import DataError, SpecError
from bnn_ppl.spec import LayerShape, Network

__all__ = ["BuiltModel", "build_model"]


@dataclass
class BuiltModel:
    """A compiled spec: the PyMC model and the handles the rest of the library needs.

    Attributes
    ----------
    spec : Network
        The spec, with ``input_dim`` set from the data.
    model : pm.Model
        The PyMC model; use it like any other (``with built.model: ...``).
    layers : list of LayerShape
        Resolved layers (names, sizes, priors).
    X_data, y_data : TensorSharedVariable
        The ``pm.Data`` containers ``"X"`` and ``"y"`` (swap with ``pm.set_data``).
    output : TensorVariable
        Last-layer output on the training input (the minibatch when ``batch_size`` is set).
    weights : dict
        Layer name -> (W, b or None) tensors.
    init_scales : dict
        Free RV name -> std of the symmetry-breaking random initial means.
    n_obs, batch_size : int
        Training rows and minibatch size (``None`` for full batch).
    """

    spec: Network
    model: pm.Model
    layers: list[LayerShape]
    X_data: Any
    y_data: Any
    output: pt.TensorVariable
    weights: dict[str, tuple[pt.TensorVariable, pt.TensorVariable | None]]
    init_scales: dict[str, float]
    n_obs: int
    batch_size: int | None = None
    _forward_cache: dict = field(default_factory=dict, repr=False)

    def forward(self, x: pt.TensorVariable) -> pt.TensorVariable:
        """The last layer's output (logits or mean) for a symbolic input ``x`` of shape (rows, features)."""
        h = x
        for layer in self.layers:
            w, b = self.weights[layer.name]
            h = pt.dot(h, w)
            if b is not None:
                h = h + b
            h = apply_activation(layer.activation, h)
        return h

    def parameter(self, output: pt.TensorVariable) -> pt.TensorVariable:
        """p(y=1), class probabilities or the mean, from a last-layer ``output``."""
        return output_parameter(self.spec.likelihood, output)

    @property
    def observed_name(self) -> str:
        return OBSERVED_NAME

    @property
    def free_rv_names(self) -> list[str]:
        return [rv.name for rv in self.model.free_RVs]


def _label_storage(labels: np.ndarray) -> np.ndarray:
    """Store labels in PyMC's intX, refusing values intX cannot hold (pm.Data would wrap them)."""
    dtype = to_intX(np.zeros(0, dtype=np.int64)).dtype
    info = np.iinfo(dtype)
    if labels.size and (labels.max() > info.max or labels.min() < info.min):
        raise DataError(
            f"Labels up to {labels.max()} do not fit PyMC's integer type {dtype} under this floatX; "
            "re-encode them as 0..K-1."
        )
    return labels.astype(dtype)


def build_model(
    spec: Network,
    X: Any,
    y: Any,
    batch_size: int | None = None,
    *,
    feature_names: list[str] | None = None,
    class_names: list[str] | None = None,
) -> BuiltModel:
    """Compile ``spec`` and data into a ``pm.Model``.

    Parameters
    ----------
    spec : Network
        The network spec.
    X : array-like of shape (n, d)
        Training inputs (numpy, pandas or nested lists).
    y : array-like of shape (n,)
        Targets: 0/1 for Bernoulli, 0..K-1 for Categorical, reals for Normal.
    batch_size : int, optional
        Minibatch size; the likelihood then carries ``total_size=n``.
    feature_names, class_names : list of str, optional
        Coordinate labels for the ``dense_0_in`` and (categorical) output dims.

    Returns
    -------
    BuiltModel

    Examples
    --------
    >>> built = build_model(spec, X_train, y_train)  # doctest: +SKIP
    >>> built.model.coords["dense_0_in"]  # doctest: +SKIP
    """
    if not isinstance(spec, Network):
        raise SpecError(f"build_model needs a Network spec. Got {type(spec).__name__}; see bnn_ppl.load_spec.")
    X_arr = as_features(X, spec.input_dim)
    spec = spec.with_input_dim(X_arr.shape[1]) if spec.input_dim is None else spec
    n = X_arr.shape[0]
    y_arr = as_targets(y, spec.likelihood, n)
    if spec.likelihood.is_classifier:
        y_arr = _label_storage(y_arr)
    if batch_size is not None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise DataError(f"The 'batch_size' parameter must be a positive integer or None. Got {batch_size!r}.")
        if batch_size > n:
            raise DataError(f"batch_size={batch_size} is larger than the {n} training rows; lower it or use None.")
        batch_size = int(batch_size)
    layers = spec.resolve()

    coords: dict[str, Any] = {}
    for i, layer in enumerate(layers):
        in_labels = list(range(layer.fan_in))
        if i == 0 and feature_names is not None:
            in_labels = list(feature_names)
        out_labels = list(range(layer.units))
        if i == len(layers) - 1 and class_names is not None and len(class_names) == layer.units:
            out_labels = list(class_names)
        coords[f"{layer.name}_in"] = in_labels
        coords[f"{layer.name}_out"] = out_labels

    weights: dict[str, tuple] = {}
    init_scales: dict[str, float] = {}
    with pm.Model(coords=coords) as model:
        X_data = pm.Data("X", X_arr, dims=("obs", f"{layers[0].name}_in"))
        y_data = pm.Data("y", y_arr, dims=("obs",))
        for layer in layers:
            w = build_weights(layer.prior, f"{layer.name}_w", (f"{layer.name}_in", f"{layer.name}_out"), layer.fan_in)
            init_scales.update(w.init_scales)
            b_value = None
            if layer.bias:
                b = build_weights(layer.bias_prior, f"{layer.name}_b", (f"{layer.name}_out",), layer.fan_in)
                b_value = b.value
            weights[layer.name] = (w.value, b_value)
        built = BuiltModel(
            spec=spec,
            model=model,
            layers=layers,
            X_data=X_data,
            y_data=y_data,
            output=None,  # set below
            weights=weights,
            init_scales=init_scales,
            n_obs=n,
            batch_size=batch_size,
        )
        if batch_size is None:
            x_in, y_in, total, dims = X_data, y_data, None, "obs"
        else:
            x_in, y_in = pm.Minibatch(X_data, y_data, batch_size=batch_size)
            total, dims = n, None
        built.output = built.forward(x_in)
        build_likelihood(spec.likelihood, built.output, y_in, total, dims)
    return built



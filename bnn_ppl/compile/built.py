"""``BuiltModel``: what :func:`~bnn_ppl.compile.build_model` returns, the ``pm.Model`` and what bnn_ppl needs of it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from bnn_ppl.array_ops import pytensor_ops
from bnn_ppl.compile.data import as_targets
from bnn_ppl.compile.likelihoods import output_parameter
from bnn_ppl.compile.streamed import RowSource
from bnn_ppl.errors import DataError
from bnn_ppl.spec import ForwardContext, Network, ResolvedLayer
from bnn_ppl.spec.layers import network_forward

__all__ = ["BuiltModel", "input_dims"]


def input_dims(layers: list[ResolvedLayer]) -> tuple[str, ...]:
    """Model dims of one input example: the first layer's own (``dense_0_in``) or generic names."""
    first = layers[0]
    own = first.layer.input_dims(first.name, first.in_shape)
    if own is not None:
        return own
    generic = {1: ("feature",), 3: ("channel", "height", "width")}
    return generic.get(len(first.in_shape), tuple(f"input_axis_{i}" for i in range(len(first.in_shape))))


@dataclass
class BuiltModel:
    """A compiled spec: the PyMC model and the handles the rest of the library needs.

    Attributes
    ----------
    spec : Network
        The spec, with its input shape set from the data.
    model : pm.Model
        The PyMC model; use it like any other (``with built.model: ...``).
    layers : list of ResolvedLayer
        Resolved layers (names, shapes, parameter blocks, priors).
    X_data, y_data : TensorSharedVariable
        The ``pm.Data`` containers ``"X"`` and ``"y"`` (swap with ``pm.set_data``).
    output : TensorVariable
        Last-layer output on the training input (the minibatch when ``batch_size`` is set).
    params : dict
        Layer name -> {parameter key -> tensor} (``{"w": ..., "b": ...}``).
    init_scales, init_locs : dict
        Free RV name -> std and centre of the symmetry-breaking random initial means.
    n_obs, batch_size : int
        Training rows and minibatch size (``None`` for full batch).
    feature_names, class_names : list or None
        Labels of flat input features and of the classes.
    reference_X : ndarray or None
        For networks with batch statistics (BatchNorm): ``REFERENCE_ROWS`` training rows chosen
        with ``random_seed``; the predictor normalises every posterior draw with their statistics.
    built_rv_names : tuple of str
        The free random variables the spec created (``save`` refuses models a user extended).
    built_var_names : tuple of str
        Every named variable of the model as built (random variables, deterministics, potentials,
        data): :attr:`extended` compares the model with it.
    prior_scale_data : TensorSharedVariable or None
        The ``pm.Data`` ``"prior_scale"`` of a model built with ``prior_scale=`` (None otherwise).
    source, source_y : RowSource and ndarray, or None
        For an ``X`` larger than memory (memory-mapped, dask or zarr, with ``batch_size``): the
        rows, read by chunk during the fit, and all targets; the ``pm.Data`` containers then hold
        the first ``batch_size`` rows as a stand-in (PyMC's own ``pm.fit`` would see only those).
    training_data : bool
        False for a model loaded from a file saved with ``include_data=False``: its containers
        hold stand-in rows of the right width, enough to predict but not to fit, score or
        export the training data (:meth:`check_training_rows`).

    The arrays the containers held when the model was built (or last fitted) are kept by
    reference: :meth:`check_training_rows` tells training rows from rows ``pm.set_data``
    swapped in, also when both have the same number of rows.
    """

    spec: Network
    model: pm.Model
    layers: list[ResolvedLayer]
    X_data: Any
    y_data: Any
    output: pt.TensorVariable
    params: dict[str, dict[str, pt.TensorVariable]]
    init_scales: dict[str, float]
    init_locs: dict[str, float]
    n_obs: int
    batch_size: int | None = None
    feature_names: list | None = None
    class_names: list | None = None
    reference_X: np.ndarray | None = None
    built_rv_names: tuple[str, ...] = ()
    built_var_names: tuple[str, ...] = ()
    prior_scale_data: Any = None
    source: RowSource | None = None
    source_y: np.ndarray | None = None
    training_data: bool = True
    _training_values: tuple | None = field(default=None, repr=False, compare=False)

    def forward(self, x: pt.TensorVariable, ctx: ForwardContext = ForwardContext()) -> pt.TensorVariable:
        """The last layer's output (logits or mean) for a symbolic input ``x`` of shape (rows, *input_shape)."""
        return network_forward(pytensor_ops(), self.layers, self.params, x, ctx)

    def parameter(self, output: pt.TensorVariable) -> pt.TensorVariable:
        """p(y=1), class probabilities or the mean, from a last-layer ``output``."""
        return output_parameter(self.spec.likelihood, output)

    @property
    def input_dims(self) -> tuple[str, ...]:
        """Dims of one input example (``X`` has ``("obs", *input_dims)``)."""
        return input_dims(self.layers)

    def targets(self) -> np.ndarray:
        """The targets the ``y`` container holds now: int64 class labels, or floats for regression.

        Class labels are stored in floatX, as the seed notebook's ``pm.Data`` does, so that
        ``pm.set_data({"y": ...})`` takes integer and integral float labels alike; the
        likelihood casts them to integers. Values ``pm.set_data`` put there that are not
        labels of this likelihood are refused here, with the fix.
        """
        y = np.asarray(self.y_data.get_value())
        if not self.spec.likelihood.is_classifier:
            return y
        return as_targets(y, self.spec.likelihood, y.shape[0], name="The 'y' container (set by pm.set_data)")

    @property
    def container_rows_expected(self) -> int:
        """Rows the containers hold for fitting: ``n_obs``, or ``batch_size`` stand-in rows for a streamed X."""
        return self.n_obs if self.source is None else int(self.batch_size)

    def container_rows(self) -> list[int]:
        """Rows the ``X`` and ``y`` containers hold now (``pm.set_data`` may have swapped them)."""
        return sorted({np.asarray(self.X_data.get_value()).shape[0], np.asarray(self.y_data.get_value()).shape[0]})

    def check_training_rows(self, purpose: str, hint: str = "", *, adopt: bool = False) -> None:
        """Refuse ``purpose`` (``"fit"``, ``"to_datatree"``, ...) unless the containers hold the training rows
        (``hint``: another way the caller could go, appended to the message). With ``adopt``
        (``fit``), same-sized rows ``pm.set_data`` put there become the training rows.

        Raises
        ------
        DataError
            For a model loaded without its training data, or when ``pm.set_data`` swapped other
            rows in (the likelihood's ``total_size`` and ``n_obs`` are fixed at build time).
        """
        if not self.training_data:
            raise DataError(f"This model was loaded from a file saved without its training data (include_data=False); "
                            f"{purpose} needs its {self.n_obs} training rows. Load a file saved with its data, or "
                            f"build a new model on them with bp.build_model(spec, X, y){hint}.")
        rows = self.container_rows()
        if rows != [self.container_rows_expected]:
            raise DataError(
                f"The model's pm.Data containers hold {rows} rows but it was built on {self.container_rows_expected} "
                f"training rows (pm.set_data swapped them, e.g. for prediction); {purpose} needs the training rows. "
                f"Set them back with pm.set_data, or build a new model on the new data with bp.build_model(spec, X, y)"
                f"{hint}."
            )
        if not adopt and not self._holds_training_values():
            raise DataError(
                f"The model's pm.Data containers hold other rows than it was built (or last fitted) on, as many of them "
                f"(pm.set_data swapped them, e.g. for test data); {purpose} needs the training rows. Set them back "
                f"with pm.set_data{hint}."
            )
        self.targets()  # refuses values pm.set_data put into the y container that are not labels
        if adopt:
            self.adopt_training_rows()

    def _holds_training_values(self) -> bool:
        if self._training_values is None:
            return True
        current = (self.X_data.get_value(borrow=True), self.y_data.get_value(borrow=True))
        return all(now is then or (now.shape == then.shape and np.array_equal(now, then))
                   for now, then in zip(current, self._training_values, strict=True))

    def adopt_training_rows(self) -> None:
        """Take the rows the containers hold now as the training rows (``fit`` does: a fit is on them)."""
        self._training_values = (self.X_data.get_value(borrow=True), self.y_data.get_value(borrow=True))

    def full_batch(self) -> BuiltModel:
        """This model, or for a minibatch model the same spec compiled on all its training rows.

        The free variables (names, shapes, transforms) are identical, so posterior draws of one
        fit both. Use it for what ``pm.Minibatch`` cannot do: ``pm.set_data`` with test rows and
        ``pm.sample_posterior_predictive`` (a minibatch model would draw ``batch_size`` random
        test rows), NUTS or ``pm.find_MAP`` on the whole likelihood.
        """
        if self.batch_size is None:
            return self
        self.check_training_rows("full_batch")
        if self.source is not None:
            raise DataError("This model streams X from data larger than memory; a full-batch model would load it.")
        from bnn_ppl.compile.model import build_model

        full = build_model(self.spec, self.X_data.get_value(), self.targets(), feature_names=self.feature_names,
                           class_names=self.class_names, prior_scale=self.prior_scale)
        full.reference_X = self.reference_X  # BatchNorm's reference rows, as the predictor uses them
        return full

    @property
    def prior_scale(self) -> float | None:
        """The value the ``"prior_scale"`` ``pm.Data`` holds now (None for a model built without one)."""
        return None if self.prior_scale_data is None else float(self.prior_scale_data.get_value())

    @property
    def free_rv_names(self) -> list[str]:
        return [rv.name for rv in self.model.free_RVs]

    @property
    def extended(self) -> bool:
        """Whether a user added variables to ``model`` after it was built (a ``pm.Potential``, a
        prior, a ``pm.Data`` container, ...): its log-density is then no longer the spec's alone."""
        return set(self.model.named_vars) != set(self.built_var_names)

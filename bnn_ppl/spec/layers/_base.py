"""The layer protocol: what every layer kind declares, and the registry of kinds.

A layer kind is one frozen dataclass in its own small file. From its input shape (one example,
without the rows axis) it declares

- its parameter blocks (:class:`ParamBlock`: key, shape, dim names, fan-in, role),
- its output shape (raising :class:`~bnn_ppl.SpecError` naming the layer when the input does not fit),
- one forward function ``forward(xp, params, h, in_shape, ctx)``.

``forward`` is written once over an array namespace ``xp`` (numpy, JAX or PyTensor, see
:mod:`bnn_ppl.array_ops`), so the PyMC model, every engine and the predictor run the same
definition. ``h`` has shape ``(..., rows, *in_shape)`` and each parameter ``(..., *shape)``: the
optional leading axes (posterior draws in the predictor) broadcast, so the batched predictor and
the single-draw model graph share the code. Variable and dim names come from
:class:`ResolvedLayer` only: ``<layer>_<key>`` and ``<layer>_<dim>``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, ClassVar

from bnn_ppl.errors import SpecError
from bnn_ppl.registry import Registry
from bnn_ppl.spec.priors import Prior

__all__ = [
    "LAYERS",
    "Layer",
    "ParamBlock",
    "ResolvedParam",
    "ResolvedLayer",
    "ForwardContext",
    "check_name",
    "lead_shape",
    "network_forward",
    "values_per_row",
]

#: Layer ``kind`` -> layer class (filled by ``Layer.__init_subclass__``).
LAYERS: Registry[type[Layer]] = Registry("layer kind")

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
#: Parameter roles and which prior each takes (layer field, then the network's).
ROLES = ("weight", "bias", "scale")


def check_name(owner: str, value: Any) -> None:
    """Names become PyMC variable names, ArviZ dims and file names: letters, digits, underscores."""
    if value is not None and (not isinstance(value, str) or not _NAME.match(value)):
        raise SpecError(
            f"The 'name' parameter of {owner} must start with a letter and contain only letters, "
            f"digits and underscores. Got {value!r} instead."
        )


def lead_shape(h: Any, core_ndim: int) -> tuple:
    """The leading axes of ``h`` before its last ``core_ndim`` (works for numpy, JAX and PyTensor)."""
    return tuple(h.shape[i] for i in range(h.ndim - core_ndim))


@dataclass(frozen=True)
class ParamBlock:
    """One parameter tensor a layer declares.

    Attributes
    ----------
    key : str
        Short name; the PyMC variable is ``<layer>_<key>`` (``w``, ``b``, ``scale``, ``shift``).
    shape : tuple of int
    dims : tuple of str
        One short dim name per axis; the model's dims are ``<layer>_<dim>``.
    fan_in : int
        Inputs feeding one output (fan-in scaled priors and the initial spread use it).
    role : {"weight", "bias", "scale"}
        Which prior applies: weights take ``prior``, biases/shifts ``bias_prior``, scales
        ``scale_prior`` (centred at 1).
    in_axis : int
        The axis indexing the layer's inputs (per-input local scales, e.g. the horseshoe's).
    prior_field : str, optional
        The layer field that overrides the network's prior for this block; default by role
        (``prior``, ``bias_prior``, ``scale_prior``).
    """

    key: str
    shape: tuple[int, ...]
    dims: tuple[str, ...]
    fan_in: int
    role: str = "weight"
    in_axis: int = 0
    prior_field: str | None = None

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"ParamBlock role must be one of {ROLES}. Got {self.role!r}.")
        if self.prior_field is None:
            object.__setattr__(self, "prior_field", {"weight": "prior", "bias": "bias_prior", "scale": "scale_prior"}[self.role])


@dataclass(frozen=True)
class ResolvedParam:
    """A :class:`ParamBlock` placed in a network: full variable name, dims and effective prior."""

    key: str
    var_name: str
    shape: tuple[int, ...]
    dims: tuple[str, ...]
    fan_in: int
    role: str
    in_axis: int
    prior: Prior

    @property
    def size(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class ForwardContext:
    """Facts about the batch a forward pass runs on.

    ``stat_rows``: layers with batch statistics (BatchNorm) compute them from the first
    ``stat_rows`` rows only (None: all rows). The predictor puts a fixed reference batch of
    training rows first, so every posterior draw normalises test rows with training statistics.
    """

    stat_rows: int | None = None


class Layer:
    """Base class of every layer kind (a frozen dataclass with a ``name`` field).

    Subclasses set ``kind`` (the TOML ``kind``) and ``prefix`` (default names ``<prefix>_<k>``,
    counted per prefix), and implement :meth:`param_blocks`, :meth:`output_shape` and
    :meth:`forward`.
    """

    kind: ClassVar[str] = ""
    prefix: ClassVar[str] = ""
    #: True when the forward pass normalises with statistics of the batch (see ForwardContext).
    batch_statistics: ClassVar[bool] = False
    #: True when the kind implements :meth:`forward_features_first`.
    features_first: ClassVar[bool] = False
    #: True when the kind implements :meth:`preactivation`, each output unit a sum of input x
    #: parameter products (plus a bias) whose parameters no other unit of the same example uses:
    #: under a mean-field q the units' pre-activations are then independent Gaussians given the
    #: input, which ``bp.ELBO(local_reparameterization=True)`` samples in place of the weights.
    local_reparameterization: ClassVar[bool] = False
    name: str | None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.kind:
            LAYERS.add(cls.kind, cls)

    # ----------------------------------------------------------------- the protocol
    def param_blocks(self, in_shape: tuple[int, ...]) -> tuple[ParamBlock, ...]:
        """The parameter tensors for an input of shape ``in_shape`` (none by default)."""
        return ()

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        raise NotImplementedError

    def forward(self, xp: Any, params: dict[str, Any], h: Any, in_shape: tuple[int, ...], ctx: ForwardContext) -> Any:
        """``h`` (..., rows, *in_shape) -> (..., rows, *output_shape(in_shape))."""
        raise NotImplementedError

    def forward_features_first(self, xp: Any, params: dict[str, Any], h: Any, in_shape: tuple[int, ...]) -> Any:
        """The map of :meth:`forward` on a batch stored features first, for one draw of the parameters:
        ``h`` (*in_shape, rows) -> (*output_shape(in_shape), rows).

        Optional (set ``features_first = True``): the JAX engine runs a network of such layers
        this way on CPUs when its batches are at least as many rows as its widest layer
        (:mod:`bnn_ppl.inference.engines.features_first`).
        """
        raise NotImplementedError(f"{type(self).__name__} has no features-first forward pass")

    def preactivation(self, xp: Any, params: dict[str, Any], h: Any, in_shape: tuple[int, ...],
                      features_first: bool = False) -> Any:
        """The layer's map before its activation, for one draw of the parameters: ``forward`` is
        ``activation(preactivation(...))``. ``h`` is (rows, *in_shape), or (*in_shape, rows) with
        ``features_first``.

        Optional (set ``local_reparameterization = True``): given ``h``, its mean under a
        mean-field q is ``preactivation(means, h)`` and its variance ``preactivation(variances, h * h)``.
        """
        raise NotImplementedError(f"{type(self).__name__} has no pre-activation map")

    def scratch_size(self, in_shape: tuple[int, ...]) -> int:
        """Values per example held by the forward pass beyond its input and output (memory budgets)."""
        return 0

    def fixed_output_shape(self) -> tuple[int, ...] | None:
        """The output shape when it does not depend on the input (``Dense``: (units,)), else None."""
        return None

    def input_dims(self, layer_name: str, in_shape: tuple[int, ...]) -> tuple[str, ...] | None:
        """Model dim names for this layer's input axes when it is the first layer (None: generic)."""
        return None

    def output_dims(self, layer_name: str, out_shape: tuple[int, ...]) -> tuple[str, ...] | None:
        """Model dim names for the output axes (the last layer's label the classes)."""
        return None

    # ----------------------------------------------------------------- shared helpers
    @property
    def activation_name(self) -> str | None:
        return getattr(self, "activation", None)

    def _shape_error(self, in_shape: tuple[int, ...], expected: str, fix: str) -> SpecError:
        return SpecError(
            f"{type(self).__name__} layer {self.name or self.kind!r} got input shape {tuple(in_shape)} "
            f"but expects {expected}; {fix}"
        )

    def _image_shape(self, in_shape: tuple[int, ...]) -> tuple[int, int, int]:
        if len(in_shape) != 3:
            raise self._shape_error(
                in_shape, "(channels, height, width)",
                "set Network(input_shape=(C, H, W)) or put Reshape((C, H, W)) before it.",
            )
        return in_shape  # type: ignore[return-value]


@dataclass(frozen=True)
class ResolvedLayer:
    """A layer placed in a network: its name, shapes and parameters with their effective priors.

    Everything the compile, inference, predictive and integration layers know about a layer
    comes from here.
    """

    name: str
    index: int
    layer: Layer
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    params: tuple[ResolvedParam, ...]

    @property
    def kind(self) -> str:
        return self.layer.kind

    @property
    def n_params(self) -> int:
        return sum(p.size for p in self.params)

    def param(self, key: str) -> ResolvedParam | None:
        return next((p for p in self.params if p.key == key), None)

    def dim_sizes(self) -> dict[str, int]:
        """Model dim name -> size for every parameter axis of this layer."""
        out: dict[str, int] = {}
        for p in self.params:
            out.update(zip(p.dims, p.shape, strict=True))
        return out

    def forward(self, xp: Any, params: dict[str, Any], h: Any, ctx: ForwardContext = ForwardContext()) -> Any:
        """``params``: parameter key -> tensor (``w``, ``b``, ...)."""
        return self.layer.forward(xp, params, h, self.in_shape, ctx)


def network_forward(
    xp: Any, layers: list[ResolvedLayer], params: dict[str, dict[str, Any]], h: Any,
    ctx: ForwardContext = ForwardContext(),
) -> Any:
    """Run every layer: the last layer's output (logits or mean) for inputs ``h`` (..., rows, *input_shape)."""
    for layer in layers:
        h = layer.forward(xp, params[layer.name], h, ctx)
    return h


def values_per_row(layers: list[ResolvedLayer]) -> int:
    """The largest number of values one example holds at once in a forward pass (memory budgets)."""
    return max(
        math.prod(layer.in_shape) + math.prod(layer.out_shape) + layer.layer.scratch_size(layer.in_shape)
        for layer in layers
    )

"""``Dense``: a fully connected layer ``activation(x @ W + b)``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from bnn_ppl.spec import _validate as v
from bnn_ppl.spec.activations import ACTIVATIONS, apply_activation
from bnn_ppl.spec.layers._base import ForwardContext, Layer, ParamBlock, check_name
from bnn_ppl.spec.priors import Prior

__all__ = ["Dense"]


@dataclass(frozen=True)
class Dense(Layer):
    """A fully connected layer ``activation(x @ W + b)`` on flat inputs.

    Parameters
    ----------
    units : int
        Number of outputs.
    activation : str
        A name from ``bnn_ppl.spec.ACTIVATIONS``.
    bias : bool
        Whether the layer has a bias vector.
    prior, bias_prior : Prior, optional
        Override the network-wide priors for this layer's weights / bias.
    name : str, optional
        Layer name used for PyMC variables and ArviZ dims; defaults to ``dense_<k>``.

    Notes
    -----
    Parameters ``w`` (dims ``<name>_in``, ``<name>_out``) and ``b`` (``<name>_out``).

    Examples
    --------
    >>> Dense(5, activation="tanh")
    Dense(units=5, activation='tanh', bias=True, prior=None, bias_prior=None, name=None)
    >>> Dense(5).output_shape((3,))
    (5,)
    """

    kind: ClassVar[str] = "dense"
    prefix: ClassVar[str] = "dense"
    units: int
    activation: str = "tanh"
    bias: bool = True
    prior: Prior | None = None
    bias_prior: Prior | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "units", v.positive_int("Dense", "units", self.units))
        ACTIVATIONS.get(self.activation, field="activation")
        v.boolean("Dense", "bias", self.bias)
        v.optional_prior("Dense", "prior", self.prior)
        v.optional_prior("Dense", "bias_prior", self.bias_prior)
        check_name("Dense", self.name)

    def _fan_in(self, in_shape: tuple[int, ...]) -> int:
        if len(in_shape) != 1:
            raise self._shape_error(in_shape, "flat features (width,)", "put Flatten() before it.")
        return in_shape[0]

    def param_blocks(self, in_shape: tuple[int, ...]) -> tuple[ParamBlock, ...]:
        d = self._fan_in(in_shape)
        blocks = [ParamBlock("w", (d, self.units), ("in", "out"), d, "weight", in_axis=0)]
        if self.bias:
            blocks.append(ParamBlock("b", (self.units,), ("out",), d, "bias"))
        return tuple(blocks)

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        self._fan_in(in_shape)
        return (self.units,)

    def forward(self, xp: Any, params: dict[str, Any], h: Any, in_shape: tuple[int, ...], ctx: ForwardContext) -> Any:
        return apply_activation(xp, self.activation, self.preactivation(xp, params, h, in_shape))

    features_first: ClassVar[bool] = True
    local_reparameterization: ClassVar[bool] = True

    def forward_features_first(self, xp: Any, params: dict[str, Any], h: Any, in_shape: tuple[int, ...]) -> Any:
        return apply_activation(xp, self.activation, self.preactivation(xp, params, h, in_shape, features_first=True))

    def preactivation(self, xp: Any, params: dict[str, Any], h: Any, in_shape: tuple[int, ...],
                      features_first: bool = False) -> Any:
        if features_first:
            out = xp.matmul(xp.moveaxis(params["w"], -1, -2), h)  # (units, in) @ (in, rows)
            return out + params["b"][:, None] if "b" in params else out
        out = xp.matmul(h, params["w"])
        return out + params["b"][..., None, :] if "b" in params else out

    def fixed_output_shape(self) -> tuple[int, ...]:
        return (self.units,)

    def input_dims(self, layer_name: str, in_shape: tuple[int, ...]) -> tuple[str, ...]:
        return (f"{layer_name}_in",)

    def output_dims(self, layer_name: str, out_shape: tuple[int, ...]) -> tuple[str, ...]:
        return (f"{layer_name}_out",)

"""``Flatten`` and ``Reshape``: change the shape of each example, no parameters."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

from bnn_ppl.spec import _validate as v
from bnn_ppl.spec.layers._base import ForwardContext, Layer, check_name, lead_shape

__all__ = ["Flatten", "Reshape"]


@dataclass(frozen=True)
class Flatten(Layer):
    """Flatten each example to one axis (C-order, as PyTorch's ``x.view(-1, C*H*W)``).

    Examples
    --------
    >>> Flatten().output_shape((20, 4, 4))
    (320,)
    """

    kind: ClassVar[str] = "flatten"
    prefix: ClassVar[str] = "flatten"
    name: str | None = None

    def __post_init__(self) -> None:
        check_name("Flatten", self.name)

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (math.prod(in_shape),)

    def forward(self, xp: Any, params: dict[str, Any], h: Any, in_shape: tuple[int, ...], ctx: ForwardContext) -> Any:
        return h.reshape((*lead_shape(h, len(in_shape)), math.prod(in_shape)))


@dataclass(frozen=True)
class Reshape(Layer):
    """Reshape each example to ``target_shape`` (C-order), e.g. 64 digit pixels to (1, 8, 8).

    Examples
    --------
    >>> Reshape((1, 8, 8)).output_shape((64,))
    (1, 8, 8)
    """

    kind: ClassVar[str] = "reshape"
    prefix: ClassVar[str] = "reshape"
    target_shape: tuple[int, ...] = ()
    name: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "target_shape", v.int_tuple("Reshape", "target_shape", self.target_shape))
        check_name("Reshape", self.name)

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        if math.prod(in_shape) != math.prod(self.target_shape):
            raise self._shape_error(
                in_shape, f"{math.prod(self.target_shape)} values per example for target_shape {self.target_shape}",
                f"choose a target_shape with {math.prod(in_shape)} values.",
            )
        return self.target_shape

    def forward(self, xp: Any, params: dict[str, Any], h: Any, in_shape: tuple[int, ...], ctx: ForwardContext) -> Any:
        return h.reshape((*lead_shape(h, len(in_shape)), *self.target_shape))

"""``MaxPool2D`` and ``AvgPool2D``: non-overlapping pooling windows over images."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from bnn_ppl.spec import _validate as v
from bnn_ppl.spec.layers._base import ForwardContext, Layer, check_name, lead_shape

__all__ = ["MaxPool2D", "AvgPool2D"]


@dataclass(frozen=True)
class _Pool2D(Layer):
    """Pooling over ``pool_size`` windows with stride ``pool_size`` (PyTorch's ``max_pool2d(x, k)``).

    Rows and columns that do not fill a window are dropped (``floor`` mode). No parameters.
    """

    pool_size: int | tuple[int, int] = 2
    name: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "pool_size", v.int_pair(type(self).__name__, "pool_size", self.pool_size))
        check_name(type(self).__name__, self.name)

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        c, h, w = self._image_shape(in_shape)
        ph, pw = self.pool_size
        if h < ph or w < pw:
            raise self._shape_error(in_shape, f"images at least {self.pool_size}", "use a smaller pool_size.")
        return (c, h // ph, w // pw)

    def _windows(self, h: Any, in_shape: tuple[int, ...]) -> Any:
        c, _, _ = in_shape
        _, ho, wo = self.output_shape(in_shape)
        ph, pw = self.pool_size
        h = h[..., : ho * ph, : wo * pw]
        return h.reshape((*lead_shape(h, 2), ho, ph, wo, pw))


@dataclass(frozen=True)
class MaxPool2D(_Pool2D):
    """Max over non-overlapping ``pool_size`` windows.

    Examples
    --------
    >>> MaxPool2D(2).output_shape((10, 24, 24))
    (10, 12, 12)
    """

    kind: ClassVar[str] = "max_pool2d"
    prefix: ClassVar[str] = "maxpool"

    def forward(self, xp: Any, params: dict[str, Any], h: Any, in_shape: tuple[int, ...], ctx: ForwardContext) -> Any:
        return xp.max(self._windows(h, in_shape), axis=(-3, -1))


@dataclass(frozen=True)
class AvgPool2D(_Pool2D):
    """Mean over non-overlapping ``pool_size`` windows.

    Examples
    --------
    >>> AvgPool2D((2, 3)).output_shape((4, 8, 9))
    (4, 4, 3)
    """

    kind: ClassVar[str] = "avg_pool2d"
    prefix: ClassVar[str] = "avgpool"

    def forward(self, xp: Any, params: dict[str, Any], h: Any, in_shape: tuple[int, ...], ctx: ForwardContext) -> Any:
        return xp.mean(self._windows(h, in_shape), axis=(-3, -1))

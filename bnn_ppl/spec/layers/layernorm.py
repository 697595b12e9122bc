"""``LayerNorm``: per-example normalisation with a stochastic affine transform."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from bnn_ppl.spec import _validate as v
from bnn_ppl.spec.layers._base import ForwardContext, Layer, ParamBlock, check_name
from bnn_ppl.spec.priors import Prior

__all__ = ["LayerNorm"]


def channel_view(param: Any, n_axes: int) -> Any:
    """A (..., C) parameter shaped to broadcast over (..., rows, C, *spatial) with ``n_axes`` = 1 + spatial."""
    index = (Ellipsis, None, slice(None)) + (None,) * (n_axes - 1)
    return param[index]


@dataclass(frozen=True)
class LayerNorm(Layer):
    """Normalise each example over all its axes, then ``scale * z + shift`` per channel.

    For flat inputs (features,) the affine parameters are per feature; for images (C, H, W)
    per channel (one group, like GroupNorm(1, C)). Statistics come from the example itself, so
    training and prediction compute them the same way.

    Parameters
    ----------
    eps : float
        Added to the variance.
    scale_prior : Prior, optional
        Prior of ``scale``; default ``Normal(sigma=1, mu=1)`` (centred at the identity).
    shift_prior : Prior, optional
        Prior of ``shift``; default the network's ``bias_prior``.
    name : str, optional
        Defaults to ``layernorm_<k>``.

    Examples
    --------
    >>> [p.shape for p in LayerNorm().param_blocks((10, 4, 4))]
    [(10,), (10,)]
    """

    kind: ClassVar[str] = "layer_norm"
    prefix: ClassVar[str] = "layernorm"
    eps: float = 1e-5
    scale_prior: Prior | None = None
    shift_prior: Prior | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "eps", v.positive_float(type(self).__name__, "eps", self.eps))
        v.optional_prior(type(self).__name__, "scale_prior", self.scale_prior)
        v.optional_prior(type(self).__name__, "shift_prior", self.shift_prior)
        check_name(type(self).__name__, self.name)

    def param_blocks(self, in_shape: tuple[int, ...]) -> tuple[ParamBlock, ...]:
        c = in_shape[0]
        return (
            ParamBlock("scale", (c,), ("channel",), 1, "scale"),
            ParamBlock("shift", (c,), ("channel",), 1, "bias", prior_field="shift_prior"),
        )

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(in_shape)

    def _affine(self, xp: Any, params: dict[str, Any], z: Any, n_axes: int) -> Any:
        return z * channel_view(params["scale"], n_axes) + channel_view(params["shift"], n_axes)

    def forward(self, xp: Any, params: dict[str, Any], h: Any, in_shape: tuple[int, ...], ctx: ForwardContext) -> Any:
        axes = tuple(range(-len(in_shape), 0))
        mean = xp.mean(h, axis=axes, keepdims=True)
        var = xp.mean((h - mean) ** 2, axis=axes, keepdims=True)
        return self._affine(xp, params, (h - mean) / xp.sqrt(var + self.eps), len(in_shape))

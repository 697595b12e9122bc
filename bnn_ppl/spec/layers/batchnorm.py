"""``BatchNorm``: normalisation with batch statistics and a stochastic affine transform (PyVarInf's BatchNorm2d)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from bnn_ppl.spec.layers._base import ForwardContext
from bnn_ppl.spec.layers.layernorm import LayerNorm

__all__ = ["BatchNorm"]


@dataclass(frozen=True)
class BatchNorm(LayerNorm):
    """Normalise each channel with the mean and variance over the batch, then ``scale * z + shift``.

    Flat inputs (features,) are normalised per feature over the rows; images (C, H, W) per
    channel over rows, height and width (PyTorch's ``BatchNorm1d``/``BatchNorm2d``). ``scale``
    and ``shift`` are random variables, as PyVarInf makes them; there are no running averages
    (a log-density cannot carry state).

    Where the statistics come from:

    - **training**: the rows of the batch the log-density sees, i.e. each minibatch (or all
      training rows in full-batch fits), as PyTorch's training mode does;
    - **prediction**: for every posterior draw, a fixed reference batch of training rows
      (``BuiltModel.reference_X``, ``REFERENCE_ROWS`` rows chosen with ``build_model``'s
      ``random_seed`` and saved with the model) passes through the network with that draw's
      weights and its statistics normalise the test rows. Predictions therefore do not depend
      on which or how many test rows are predicted together;
    - PyMC's own samplers on ``built.model`` (``pm.set_data`` then
      ``pm.sample_posterior_predictive``) see the swapped-in rows as the batch.

    Parameters
    ----------
    eps : float
        Added to the variance.
    scale_prior, shift_prior : Prior, optional
        Priors of ``scale`` (default ``Normal(sigma=1, mu=1)``) and ``shift`` (default the
        network's ``bias_prior``).
    name : str, optional
        Defaults to ``batchnorm_<k>``.

    Examples
    --------
    >>> [p.key for p in BatchNorm().param_blocks((10, 12, 12))]
    ['scale', 'shift']
    """

    kind: ClassVar[str] = "batch_norm"
    prefix: ClassVar[str] = "batchnorm"
    batch_statistics: ClassVar[bool] = True

    def forward(self, xp: Any, params: dict[str, Any], h: Any, in_shape: tuple[int, ...], ctx: ForwardContext) -> Any:
        rows_axis = -len(in_shape) - 1
        axes = (rows_axis, *range(-len(in_shape) + 1, 0))  # rows and spatial axes, not channels
        ref = h if ctx.stat_rows is None else h[(Ellipsis, slice(0, ctx.stat_rows)) + (slice(None),) * len(in_shape)]
        mean = xp.mean(ref, axis=axes, keepdims=True)
        var = xp.mean((ref - mean) ** 2, axis=axes, keepdims=True)
        return self._affine(xp, params, (h - mean) / xp.sqrt(var + self.eps), len(in_shape))

"""A numpy forward pass over a batch of weight draws (BLAS-batched matmuls), for CPU predictors."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.special import erf, expit, softmax

from bnn_ppl.spec import Bernoulli, Categorical, Likelihood
from bnn_ppl.spec.activations import ACTIVATIONS

__all__ = ["NUMPY_ACTIVATIONS", "forward", "link"]

NUMPY_ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "tanh": np.tanh,
    "relu": lambda x: np.maximum(x, 0),
    "sigmoid": expit,
    "softplus": lambda x: np.logaddexp(0, x),
    "elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0))),
    "gelu": lambda x: 0.5 * x * (1 + erf(x / np.sqrt(2.0))),
    "silu": lambda x: x * expit(x),
    "identity": lambda x: x,
}

_missing = set(ACTIVATIONS.names()) ^ set(NUMPY_ACTIVATIONS)
if _missing:  # pragma: no cover - a programming error caught at import
    raise ImportError(f"numpy activations out of sync with the spec registry: {sorted(_missing)}")


def forward(X: np.ndarray, layers: list, weights: list[tuple[np.ndarray, np.ndarray | None]]) -> np.ndarray:
    """Last-layer outputs (draws, rows, units) for weight draws ``W`` (draws, in, out), ``b`` (draws, out)."""
    h = X[None]
    for layer, (w, b) in zip(layers, weights, strict=True):
        h = np.matmul(h, w)
        if b is not None:
            h += b[:, None, :]
        h = NUMPY_ACTIVATIONS[layer.activation](h)
    return h


def link(likelihood: Likelihood, output: np.ndarray) -> np.ndarray:
    """p(y=1), class probabilities or the mean from the last layer's output."""
    if isinstance(likelihood, Bernoulli):
        return expit(output[..., 0])
    if isinstance(likelihood, Categorical):
        return softmax(output, axis=-1)
    return output[..., 0]

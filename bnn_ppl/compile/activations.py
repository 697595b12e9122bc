"""PyTensor implementations of every activation in :data:`bnn_ppl.spec.ACTIVATIONS`."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytensor.tensor as pt

from bnn_ppl.spec.activations import ACTIVATIONS

__all__ = ["PYTENSOR_ACTIVATIONS", "apply_activation"]

PYTENSOR_ACTIVATIONS: dict[str, Callable] = {
    "tanh": pt.tanh,
    "relu": lambda x: pt.maximum(x, 0),
    "sigmoid": pt.sigmoid,
    "softplus": pt.softplus,
    "elu": lambda x: pt.switch(x > 0, x, pt.expm1(pt.minimum(x, 0))),
    "gelu": lambda x: 0.5 * x * (1 + pt.erf(x / np.sqrt(2.0).astype(x.dtype))),
    "silu": lambda x: x * pt.sigmoid(x),
    "identity": lambda x: x,
}

_missing = set(ACTIVATIONS.names()) ^ set(PYTENSOR_ACTIVATIONS)
if _missing:  # pragma: no cover - a programming error caught at import
    raise ImportError(f"PyTensor activations out of sync with the spec registry: {sorted(_missing)}")


def apply_activation(name: str, x: pt.TensorVariable) -> pt.TensorVariable:
    """Apply the named activation to ``x``."""
    ACTIVATIONS.get(name, field="activation")  # unknown names raise, listing every choice
    return PYTENSOR_ACTIVATIONS[name](x)

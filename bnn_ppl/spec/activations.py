"""The activation registry: one definition per name, written over an array namespace ``xp``.

Each activation is ``fn(xp, x)`` using only the primitives of :mod:`bnn_ppl.array_ops`, so the
PyMC graph, the JAX engine and the numpy predictor apply the same definition.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bnn_ppl.registry import Registry

__all__ = ["ACTIVATIONS", "Activation", "apply_activation"]

_INV_SQRT2 = 0.7071067811865476


@dataclass(frozen=True)
class Activation:
    """A named elementwise function: a one-line ``definition`` and ``fn(xp, x)``."""

    definition: str
    fn: Callable[[Any, Any], Any]

    def __call__(self, xp: Any, x: Any) -> Any:
        return self.fn(xp, x)


#: Activation name -> :class:`Activation`.
ACTIVATIONS: Registry[Activation] = Registry("activation")
for _name, _definition, _fn in (
    ("tanh", "hyperbolic tangent", lambda xp, x: xp.tanh(x)),
    ("relu", "max(x, 0)", lambda xp, x: xp.maximum(x, 0)),
    ("sigmoid", "1 / (1 + exp(-x))", lambda xp, x: xp.sigmoid(x)),
    ("softplus", "log(1 + exp(x))", lambda xp, x: xp.softplus(x)),
    ("elu", "x if x > 0 else exp(x) - 1", lambda xp, x: xp.where(x > 0, x, xp.expm1(xp.minimum(x, 0)))),
    ("gelu", "x * Phi(x), the exact (erf) form", lambda xp, x: 0.5 * x * (1 + xp.erf(x * _INV_SQRT2))),
    ("silu", "x * sigmoid(x) (also called swish)", lambda xp, x: x * xp.sigmoid(x)),
    ("identity", "x (use for the output layer: it produces logits or means)", lambda xp, x: x),
):
    ACTIVATIONS.add(_name, Activation(_definition, _fn))


def apply_activation(xp: Any, name: str, x: Any) -> Any:
    """Apply the named activation to ``x`` with the array namespace ``xp``."""
    return ACTIVATIONS.get(name, field="activation")(xp, x)

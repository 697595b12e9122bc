"""The activation registry: names and what they compute (backends implement each name)."""

from __future__ import annotations

from bnn_ppl.registry import Registry

__all__ = ["ACTIVATIONS"]

#: Activation name -> one-line definition. Every compile backend implements each name; a test
#: checks that none is missing.
ACTIVATIONS: Registry[str] = Registry("activation")
for _name, _definition in {
    "tanh": "hyperbolic tangent",
    "relu": "max(x, 0)",
    "sigmoid": "1 / (1 + exp(-x))",
    "softplus": "log(1 + exp(x))",
    "elu": "x if x > 0 else exp(x) - 1",
    "gelu": "x * Phi(x), the exact (erf) form",
    "silu": "x * sigmoid(x) (also called swish)",
    "identity": "x (use for the output layer: it produces logits or means)",
}.items():
    ACTIVATIONS.add(_name, _definition)

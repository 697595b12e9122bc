"""Layers as plain data."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from bnn_ppl.errors import SpecError
from bnn_ppl.spec import _validate as v
from bnn_ppl.spec.activations import ACTIVATIONS
from bnn_ppl.spec.priors import Prior

__all__ = ["Dense"]

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Dense:
    """A fully connected layer ``activation(x @ W + b)``.

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
        Layer name used for PyMC variables and ArviZ dims; defaults to ``dense_<index>``.

    Examples
    --------
    >>> Dense(5, activation="tanh")
    Dense(units=5, activation='tanh', bias=True, prior=None, bias_prior=None, name=None)
    """

    kind: ClassVar[str] = "dense"
    units: int
    activation: str = "tanh"
    bias: bool = True
    prior: Prior | None = None
    bias_prior: Prior | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        v.positive_int("Dense", "units", self.units)
        ACTIVATIONS.get(self.activation, field="activation")
        if not isinstance(self.bias, bool):
            raise SpecError(f"The 'bias' parameter of Dense must be true or false. Got {self.bias!r} instead.")
        for field in ("prior", "bias_prior"):
            value = getattr(self, field)
            if value is not None and not isinstance(value, Prior):
                raise SpecError(
                    f"The {field!r} parameter of Dense must be a Prior such as Normal(1.0) or None. "
                    f"Got {value!r} instead."
                )
        if self.name is not None and (not isinstance(self.name, str) or not _NAME.match(self.name)):
            raise SpecError(
                "The 'name' parameter of Dense must start with a letter and contain only letters, "
                f"digits and underscores. Got {self.name!r} instead."
            )

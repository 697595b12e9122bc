"""The network specification: layers, priors and likelihood, validated as plain data."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from bnn_ppl.errors import SpecError
from bnn_ppl.spec import _validate as v
from bnn_ppl.spec.layers import Dense
from bnn_ppl.spec.likelihoods import Likelihood
from bnn_ppl.spec.priors import Normal, Prior

__all__ = ["Network", "LayerShape"]


@dataclass(frozen=True)
class LayerShape:
    """A resolved layer: its name, sizes, activation and effective priors."""

    name: str
    fan_in: int
    units: int
    activation: str
    bias: bool
    prior: Prior
    bias_prior: Prior

    @property
    def n_params(self) -> int:
        return self.fan_in * self.units + (self.units if self.bias else 0)


@dataclass(frozen=True)
class Network:
    """A Bayesian neural network: dense layers, weight priors and a likelihood.

    The last layer produces the likelihood's parameters (logits or the mean), so it must have
    ``likelihood.n_outputs`` units and the ``"identity"`` activation.

    Parameters
    ----------
    layers : sequence of Dense
        Hidden layers followed by the output layer.
    likelihood : Likelihood
        ``Bernoulli()``, ``Categorical(n_classes)`` or ``Normal()``.
    prior : Prior
        Network-wide weight prior; a layer's own ``prior`` overrides it. Default ``Normal(1.0)``:
        with the library's initialisation it beat ``FanInNormal(1.0)`` on accuracy on moons
        (0.96 vs 0.85), digits (0.96 vs 0.83) and a 784-256-10 problem (0.85 vs 0.78), whose
        unit-variance output logits cannot express confident predictions.
    bias_prior : Prior
        Network-wide bias prior; a layer's ``bias_prior`` overrides it. Default ``Normal(1.0)``.
    input_dim : int, optional
        Number of input features; inferred from the data when None.
    name : str
        A label for displays and files.

    Examples
    --------
    >>> from bnn_ppl.spec import Dense, Bernoulli, Normal
    >>> net = Network([Dense(5), Dense(5), Dense(1, "identity")], Bernoulli(), prior=Normal(1.0))
    >>> [layer.name for layer in net.resolve(input_dim=2)]
    ['dense_0', 'dense_1', 'dense_2']
    """

    layers: tuple[Dense, ...]
    likelihood: Likelihood
    prior: Prior = field(default_factory=Normal)
    bias_prior: Prior = field(default_factory=Normal)
    input_dim: int | None = None
    name: str = "network"

    def __post_init__(self) -> None:
        if isinstance(self.layers, Dense) or not isinstance(self.layers, Sequence):
            raise SpecError(
                "The 'layers' parameter of Network must be a list of Dense layers. "
                f"Got {self.layers!r} instead."
            )
        object.__setattr__(self, "layers", tuple(self.layers))
        if not self.layers:
            raise SpecError("The 'layers' parameter of Network must hold at least one layer (the output layer).")
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, Dense):
                raise SpecError(f"layers[{i}] of Network must be a Dense layer. Got {layer!r} instead.")
        if not isinstance(self.likelihood, Likelihood):
            raise SpecError(
                "The 'likelihood' parameter of Network must be Bernoulli(), Categorical(n_classes) "
                f"or Normal(). Got {self.likelihood!r} instead."
            )
        for fname in ("prior", "bias_prior"):
            if not isinstance(getattr(self, fname), Prior):
                raise SpecError(
                    f"The {fname!r} parameter of Network must be a Prior such as Normal(1.0). "
                    f"Got {getattr(self, fname)!r} instead."
                )
        if self.input_dim is not None:
            v.positive_int("Network", "input_dim", self.input_dim)
        if not isinstance(self.name, str) or not self.name:
            raise SpecError(f"The 'name' parameter of Network must be a non-empty string. Got {self.name!r} instead.")
        last = self.layers[-1]
        expected = self.likelihood.n_outputs
        if last.units != expected:
            raise SpecError(
                f"The last layer must have {expected} unit(s) for the {type(self.likelihood).__name__} "
                f"likelihood (it produces {'logits' if self.likelihood.is_classifier else 'the mean'}). "
                f"Got units={last.units}; set Dense({expected}, activation='identity') as the last layer."
            )
        if last.activation != "identity":
            raise SpecError(
                "The last layer must use activation='identity': the likelihood applies its own link. "
                f"Got activation={last.activation!r}."
            )
        names = self.layer_names()
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise SpecError(f"Layer names must be unique. Got duplicates {duplicates}; rename the layers.")

    def layer_names(self) -> list[str]:
        """The name of each layer (``dense_<index>`` unless given)."""
        return [layer.name or f"dense_{i}" for i, layer in enumerate(self.layers)]

    def resolve(self, input_dim: int | None = None) -> list[LayerShape]:
        """Resolve names, fan-ins and effective priors of every layer.

        Parameters
        ----------
        input_dim : int, optional
            Number of input features; required when the spec leaves ``input_dim`` unset.
        """
        d = self._input_dim(input_dim)
        shapes = []
        for layer, name in zip(self.layers, self.layer_names(), strict=True):
            shapes.append(
                LayerShape(
                    name=name,
                    fan_in=d,
                    units=layer.units,
                    activation=layer.activation,
                    bias=layer.bias,
                    prior=layer.prior or self.prior,
                    bias_prior=layer.bias_prior or self.bias_prior,
                )
            )
            d = layer.units
        return shapes

    def n_params(self, input_dim: int | None = None) -> int:
        """Number of weights and biases."""
        return sum(layer.n_params for layer in self.resolve(input_dim))

    def with_input_dim(self, input_dim: int) -> Network:
        """A copy with ``input_dim`` set."""
        return replace(self, input_dim=v.positive_int("Network", "input_dim", input_dim))

    def __repr__(self) -> str:
        from bnn_ppl.display import network_text

        return network_text(self)

    def _repr_html_(self) -> str:
        from bnn_ppl.display import network_html

        return network_html(self)

    def _input_dim(self, input_dim: int | None) -> int:
        if self.input_dim is not None and input_dim is not None and input_dim != self.input_dim:
            raise SpecError(
                f"The data have {input_dim} features but the spec's input_dim is {self.input_dim}; "
                "fix input_dim or the data."
            )
        d = self.input_dim if self.input_dim is not None else input_dim
        if d is None:
            raise SpecError("The input dimension is unknown: set Network(input_dim=...) or pass data.")
        return d

"""Weight priors as plain data. The compile layer turns each into PyMC nodes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from bnn_ppl.registry import Registry
from bnn_ppl.spec import _validate as v

__all__ = ["PRIORS", "Prior", "Normal", "FanInNormal", "Hierarchical", "HYPERPRIORS"]

#: Prior ``kind`` (the name used in TOML/JSON) -> Prior class.
PRIORS: Registry[type[Prior]] = Registry("prior")


@dataclass(frozen=True)
class Prior:
    """Base class of every weight prior; subclasses are frozen dataclasses of floats/strings."""

    kind: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.kind:
            PRIORS.add(cls.kind, cls)


@dataclass(frozen=True)
class Normal(Prior):
    """Independent ``Normal(mu, sigma)`` weights.

    Examples
    --------
    >>> Normal(sigma=1.0)
    Normal(sigma=1.0, mu=0.0)
    """

    kind: ClassVar[str] = "normal"
    sigma: float = 1.0
    mu: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "sigma", v.positive_float("Normal", "sigma", self.sigma))
        object.__setattr__(self, "mu", v.finite_float("Normal", "mu", self.mu))


@dataclass(frozen=True)
class FanInNormal(Prior):
    """``Normal(0, scale / sqrt(fan_in))`` weights: PyVarInf's default prior.

    The standard deviation shrinks with the number of inputs of the layer so that the
    pre-activations keep unit scale whatever the width.

    Examples
    --------
    >>> FanInNormal(scale=1.0)
    FanInNormal(scale=1.0)
    """

    kind: ClassVar[str] = "fan_in_normal"
    scale: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "scale", v.positive_float("FanInNormal", "scale", self.scale))


#: Hyperpriors available for :class:`Hierarchical` layer scales.
HYPERPRIORS = ["half_normal", "half_cauchy", "exponential"]


@dataclass(frozen=True)
class Hierarchical(Prior):
    """Per-layer scale with a hyperprior, non-centred: ``w = tau * z``, ``z ~ Normal(0, 1)``.

    Parameters
    ----------
    scale : float
        Scale of the hyperprior on ``tau`` (the sigma of a HalfNormal, the beta of a
        HalfCauchy, or 1/lam of an Exponential).
    hyperprior : str
        One of ``HYPERPRIORS``.
    fan_in : bool
        If True, ``tau`` multiplies ``1/sqrt(fan_in)`` so that ``tau`` ~ 1 is the natural scale.

    Examples
    --------
    >>> Hierarchical(scale=1.0)
    Hierarchical(scale=1.0, hyperprior='half_normal', fan_in=True)
    """

    kind: ClassVar[str] = "hierarchical"
    scale: float = 1.0
    hyperprior: str = "half_normal"
    fan_in: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "scale", v.positive_float("Hierarchical", "scale", self.scale))
        v.choice("Hierarchical", "hyperprior", self.hyperprior, HYPERPRIORS)
        if not isinstance(self.fan_in, bool):
            raise v.SpecError(
                f"The 'fan_in' parameter of Hierarchical must be true or false. Got {self.fan_in!r} instead."
            )

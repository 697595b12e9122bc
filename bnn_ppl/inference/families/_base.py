"""The variational-family protocol: one Gaussian family over the flat unconstrained parameters.

A family is a small frozen dataclass that says, once, for every engine, the predictor,
description length, io and display:

- ``param_shapes(d)``: its parameter arrays for ``d`` unconstrained parameters;
- ``initial_params(mu, init_sigma, rng)``: the starting values (``mu`` breaks symmetry);
- ``noise_size(d)``: standard-normal numbers per draw, and ``sample(xp, params, eps)``: the
  reparameterised draw ``theta = mu + T(eps)`` (``eps`` may carry leading axes);
- ``entropy(xp, params)``: the analytic entropy of q (every family here is Gaussian);
- ``log_density(xp, params, theta)``: ``log q(theta)`` of draws (the path-derivative gradient
  evaluates it with the parameters held fixed);
- ``marginal_var(xp, params)``: the variance of each coordinate (the closed-form KL's
  Gaussian terms; ``marginal_std`` is its numpy square root);
- ``step_scales(d)``: per-element step-size multipliers for Adam (default 1);
- ``to_engine`` / ``from_engine``: the form the compiled loops optimise, when it differs from
  the stored one (full-rank: a dense masked matrix instead of PyMC's packed triangle);
- ``pymc_group``: the PyMC approximation class holding the same parameters under the same
  names (``"MeanField"``, ``"FullRank"``), or None when PyMC has no such family.

``xp`` is an array namespace of :mod:`bnn_ppl.array_ops` (numpy, ``jax.numpy`` or
``pytensor.tensor``), so the same code runs in the compiled loops and in numpy.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np

from bnn_ppl.errors import ParameterError
from bnn_ppl.registry import Registry

__all__ = ["Family", "FAMILIES", "AUTO_FULLRANK_MAX", "flat_layout", "resolve_family", "static_length",
           "HALF_LOG_2PI", "HALF_LOG_2PI_E"]

#: ``0.5 * log(2 pi e)``: the entropy of a standard normal coordinate.
HALF_LOG_2PI_E = 0.5 * np.log(2 * np.pi * np.e)
#: ``0.5 * log(2 pi)``: minus the log density of a standard normal at 0.
HALF_LOG_2PI = 0.5 * np.log(2 * np.pi)

#: Family name (the ``method`` argument of ``fit``) -> family class.
FAMILIES: Registry[type] = Registry("variational family", error=ParameterError)


@dataclass(frozen=True)
class Family:
    """Base class of the variational families; subclasses register themselves under ``name``."""

    name: ClassVar[str] = ""
    pymc_group: ClassVar[str | None] = None
    #: Parameter names, in the order engines carry them.
    param_names: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.name:
            FAMILIES.add(cls.name, cls)

    def param_shapes(self, d: int) -> dict[str, tuple[int, ...]]:
        raise NotImplementedError

    def bind(self, built: Any, layout: dict | None = None) -> Family:
        """The family for one model (default: itself; a structured family reads the layers)."""
        return self

    def check_size(self, d: int) -> None:
        """Refuse a parameter count this family cannot afford (a clear error, not a MemoryError)."""

    def initial_params(self, mu: np.ndarray, init_sigma: float, rng: np.random.Generator) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def noise_size(self, d: int) -> int:
        return d

    def step_scales(self, d: int) -> dict[str, np.ndarray]:
        """Per-element multipliers of the optimiser's step size, by engine parameter name (left out: 1)."""
        return {}

    @property
    def engine_names(self) -> tuple[str, ...]:
        """Names of the parameters as the engines carry them (``to_engine``'s keys)."""
        return self.param_names

    def to_engine(self, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The stored parameters in the form the compiled loops optimise (default: the same).

        ``sample`` and ``entropy`` accept both forms; leading (member) axes are kept.
        """
        return dict(values)

    def from_engine(self, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Inverse of :meth:`to_engine`."""
        return dict(values)

    def sample(self, xp: Any, params: dict[str, Any], eps: Any) -> Any:
        raise NotImplementedError

    def entropy(self, xp: Any, params: dict[str, Any]) -> Any:
        raise NotImplementedError

    def log_density(self, xp: Any, params: dict[str, Any], theta: Any) -> Any:
        """``log q(theta)`` for draws ``theta`` (..., D): one value per draw."""
        raise NotImplementedError

    def marginal_var(self, xp: Any, params: dict[str, Any]) -> Any:
        """The variance of every coordinate of q, (D,)."""
        raise NotImplementedError

    def marginal_std(self, params: dict[str, np.ndarray]) -> np.ndarray:
        """The standard deviation of every coordinate (numpy; stored or engine form)."""
        from bnn_ppl.array_ops import numpy_ops

        values = {k: np.asarray(v, dtype=float) for k, v in params.items()}
        return np.sqrt(self.marginal_var(numpy_ops(), values))

    def options(self) -> dict[str, Any]:
        """The family's settings (saved in model files; ``type(self)(**options)`` rebuilds it)."""
        return asdict(self)

    def label(self) -> str:
        """Name and settings for display, e.g. ``lowrank_advi(rank=8)``."""
        opts = ", ".join(f"{k}={v}" for k, v in self.options().items())
        return f"{self.name}({opts})" if opts else self.name


#: ``method="auto"`` fits a full-rank Gaussian up to this many parameters, mean-field above.
#: Evidence (bench/families.py, issue 11's moons 2-5-1 case, 21 parameters, 5 seeds, 30k steps):
#: full-rank's test log predictive density -0.181 (all seeds within 0.005) matched NUTS's -0.180,
#: while mean-field sat at -0.311 on 4 of 5 seeds (pruned units), low-rank (rank 2 or 8) swung
#: between -0.18 and -0.31 by seed, and 8-member mean-field ensembles reached -0.22 at 7x the
#: time. Its cost grows as D^2 (steps/s against mean-field, 8-h-1 nets: 0.20x at 101
#: parameters, 0.03x at 301, 0.014x at 601), hence the limit.
AUTO_FULLRANK_MAX = 200


def static_length(x: Any) -> int:
    """The length of ``x``'s first axis as a Python int (numpy, JAX, or a PyTensor variable with a static shape)."""
    shape = getattr(getattr(x, "type", None), "shape", None)
    if shape is not None and shape[0] is not None:
        return int(shape[0])
    return int(x.shape[0])


def resolve_family(method: Any, options: dict[str, Any] | None = None, n_params: int | None = None) -> Family:
    """A :class:`Family` from a name (``"advi"``, ``"fullrank_advi"``, ``"lowrank_advi"``, ``"unitrank_advi"``),
    ``"auto"`` or an instance.

    ``"auto"`` picks by the number of parameters ``n_params``: full-rank up to
    :data:`AUTO_FULLRANK_MAX`, mean-field above.

    Raises
    ------
    ParameterError
        For an unknown name (the message lists every family) or invalid settings.
    """
    if isinstance(method, Family):
        return method
    if method == "auto":
        if n_params is None:
            raise ParameterError("method='auto' needs the network's parameter count.")
        return FAMILIES.get("fullrank_advi")() if n_params <= AUTO_FULLRANK_MAX else FAMILIES.get("advi")()
    if not isinstance(method, str):
        raise ParameterError(
            f"The 'method' parameter of fit must be 'auto', one of {FAMILIES.names()} or a family such as "
            f"bp.LowRank(rank=8). Got {method!r} instead."
        )
    cls = FAMILIES.get(method, field="method")
    try:
        return cls(**(options or {}))
    except TypeError as err:
        raise ParameterError(f"Invalid settings {options!r} for method {method!r}: {err}") from None


def flat_layout(model: Any) -> OrderedDict:
    """``value variable name -> (name, slice, shape, dtype)`` over ``model.free_RVs``, C order.

    The layout PyMC's approximations use (``approx.groups[0].ordering``), so a flat vector
    means the same thing to every family and to PyMC.
    """
    key = tuple(rv.name for rv in model.free_RVs)
    cached = getattr(model, "_bnn_ppl_layout", None)
    if cached is not None and cached[0] == key:  # model.initial_point compiles a function each call
        return cached[1]
    layout: OrderedDict = OrderedDict()
    start = 0
    for rv, shape in zip(model.free_RVs, _value_shapes(model), strict=True):
        value = model.rvs_to_values[rv]
        size = math.prod(shape)
        layout[value.name] = (value.name, slice(start, start + size), shape, np.dtype(value.dtype))
        start += size
    model._bnn_ppl_layout = (key, layout)
    return layout


def _value_shapes(model: Any) -> list[tuple[int, ...]]:
    """The shape of each free variable's value (its transformed space), in ``model.free_RVs`` order.

    Evaluated with PyTensor's Python linker: ``model.initial_point()`` would compile a function
    with the VM linker, which on a machine's first run builds PyTensor's C lazy linker
    (0.6-0.9 s before the first fit).
    """
    import pytensor
    import pytensor.tensor as pt
    from pytensor.compile.mode import Mode

    shapes = []
    for rv in model.free_RVs:
        transform = model.rvs_to_transforms.get(rv)
        value = rv if transform is None else transform.forward(rv, *rv.owner.inputs)
        shapes.append(pt.as_tensor(value.shape, dtype="int64"))
    evaluated = pytensor.function([], shapes, mode=Mode(linker="py", optimizer="fast_compile"))()
    return [tuple(int(n) for n in shape) for shape in evaluated]

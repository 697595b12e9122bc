"""``VariationalPosterior``: a fitted q (a family, the parameters' flat layout and their values).

The one object every consumer of a fit reads: engines write into it, the predictor, ArviZ
export, description length and io draw from it. For the families PyMC has (mean-field,
full-rank) and a single member, the values live in PyMC's own approximation (``approx``), so
``approx.sample``, ``sample_node`` and PyMC's callbacks see the fit; other families and
ensembles keep them in PyTensor shared variables of the same kind.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytensor

from bnn_ppl.errors import ParameterError
from bnn_ppl.inference.families import Family, flat_layout

__all__ = ["VariationalPosterior", "split_draws"]


class NoApproximation(ParameterError, AttributeError):
    """A fit without a PyMC approximation (low-rank families, ensembles); an AttributeError too,
    so that ``hasattr(result, "approx")`` and ``getattr(result, "approx", None)`` work."""


def split_draws(draws: int, members: int, *, start: int = 0, total: int | None = None) -> np.ndarray:
    """Draws per member of an equal-weight mixture: ``draws // members``, the remainder to the first.

    With ``total``: the members' shares of draws ``start .. start + draws`` of a mixture of
    ``total`` draws taken in batches (member ``k`` owns its block of the whole mixture's draws).

    Examples
    --------
    >>> split_draws(10, 4).tolist()
    [3, 3, 2, 2]
    >>> [split_draws(2, 3, start=s, total=6).tolist() for s in (0, 2, 4)]
    [[2, 0, 0], [0, 2, 0], [0, 0, 2]]
    """
    counts = np.full(members, (draws if total is None else total) // members)
    counts[: (draws if total is None else total) % members] += 1
    if total is None:
        return counts
    bounds = np.concatenate([[0], np.cumsum(counts)])
    return np.clip(np.minimum(bounds[1:], start + draws) - np.maximum(bounds[:-1], start), 0, None)


class VariationalPosterior:
    """A variational approximation over the flat unconstrained parameters of ``model``.

    Parameters
    ----------
    family : Family
    model : pymc.Model
    values : dict of ndarray
        The family's parameters; with a leading axis of length ``members`` when ``members > 1``.
    members : int
        Independent fits held together (an ensemble, mixed with equal weights); 1 is one fit.
    random_seed : int, optional
        Seeds the PyMC approximation's own random draws (``approx.sample``, PyMC's loop).
    """

    def __init__(self, family: Family, model: Any, values: dict[str, np.ndarray], members: int = 1,
                 random_seed: int | None = None) -> None:
        from pymc.pytensorf import floatX

        self.family = family
        self.members = int(members)
        self.layout = flat_layout(model)
        self.size = sum(slc.stop - slc.start for _, slc, _, _ in self.layout.values())
        # PyMC's approximation is made when first asked for: making one compiles the model's
        # initial point (on a machine's first run that builds PyTensor's C linker, ~1 s)
        self._approx = None
        self._pymc = (model, random_seed) if self.members == 1 and family.pymc_group is not None else None
        self._shared = {name: pytensor.shared(floatX(np.asarray(values[name])), name=name)
                        for name in family.param_names}
        self.set_values(values)

    @property
    def approx(self) -> Any:
        """PyMC's approximation holding these parameters (``MeanField``/``FullRank``, one member).

        Raises
        ------
        ParameterError
            For families PyMC does not have (low-rank) and for ensembles: use the fit's
            predictor, ``to_datatree`` or, for an ensemble, ``result.member(k).approx``.
        """
        if self._pymc is None:
            what = (f"an ensemble of {self.members} fits" if self.members > 1
                    else f"method={self.family.name!r}, a family PyMC does not have")
            raise NoApproximation(
                f"This fit has no PyMC approximation ({what}). Use result.predictor(), result.to_datatree() "
                "or result.posterior.draw(...)" + (", or result.member(k).approx" if self.members > 1 else "") + "."
            )
        if self._approx is None:
            import pymc as pm

            model, random_seed = self._pymc
            values = self.values()
            self._approx = getattr(pm, self.family.pymc_group)(model=model, random_seed=random_seed)
            self._shared = dict(self._approx.groups[0].params_dict)  # from now on the parameters live there
            self.set_values(values)
        return self._approx

    @property
    def has_approx(self) -> bool:
        """Whether PyMC's approximation holds (or, asked for, will hold) these parameters (mean-field/full-rank, one member)."""
        return self._pymc is not None

    @property
    def params(self) -> list[Any]:
        """The shared variables holding the parameters (as ``approx.params``; PyMC's callbacks read it)."""
        return list(self._shared.values())

    def values(self) -> dict[str, np.ndarray]:
        """Current parameter values (copies), with the members axis when ``members > 1``."""
        return {name: np.array(var.get_value()) for name, var in self._shared.items()}

    def member_values(self, k: int = 0) -> dict[str, np.ndarray]:
        """Parameter values of member ``k`` (no members axis)."""
        values = self.values()
        return values if self.members == 1 else {name: v[k] for name, v in values.items()}

    def set_values(self, values: dict[str, Any]) -> None:
        """Write new parameter values (same shapes and names as :meth:`values`)."""
        for name, var in self._shared.items():
            current = var.get_value()
            value = np.asarray(values[name], dtype=current.dtype)
            if value.shape != current.shape:
                raise ValueError(f"parameter {name!r} has shape {value.shape}; expected {current.shape}")
            var.set_value(value)

    def member(self, k: int, model: Any) -> VariationalPosterior:
        """Member ``k`` of an ensemble as a one-member posterior (with a PyMC approximation when the family has one)."""
        if not 0 <= k < self.members:
            raise ParameterError(f"The member index must lie in [0, {self.members}). Got {k!r}.")
        return VariationalPosterior(self.family, model, self.member_values(k))

    def draw(self, draws: int, rng: np.random.Generator, *, per_member: bool = False, start: int = 0,
             total: int | None = None) -> np.ndarray:
        """(draws, D) draws of the flat parameter vector (float64), member-major.

        Each member contributes :func:`split_draws` ``(draws, members)`` draws (the equal-weight
        mixture); with ``per_member=True`` each contributes ``draws`` (``members * draws`` rows).
        ``start`` and ``total``: these are draws ``start .. start + draws`` of a mixture of ``total``
        draws drawn in batches, and each member contributes its share of that window.
        """
        from bnn_ppl.array_ops import numpy_ops

        xp = numpy_ops()
        counts = np.full(self.members, draws) if per_member else split_draws(draws, self.members, start=start,
                                                                             total=total)
        noise = self.family.noise_size(self.size)
        values = {name: np.asarray(v, dtype=float) for name, v in self.values().items()}  # one copy
        out = []
        for k, count in enumerate(counts):
            params = values if self.members == 1 else {name: v[k] for name, v in values.items()}
            out.append(self.family.sample(xp, params, rng.standard_normal((int(count), noise))))
        return np.concatenate(out) if out else np.zeros((0, self.size))

"""Variational families: one protocol (:class:`Family`), one registry (:data:`FAMILIES`).

A new family is one small file defining a :class:`Family` subclass plus an import here.
"""

from bnn_ppl.inference.families._base import AUTO_FULLRANK_MAX, FAMILIES, Family, flat_layout, resolve_family
from bnn_ppl.inference.families.fullrank import FullRank
from bnn_ppl.inference.families.lowrank import LowRank
from bnn_ppl.inference.families.meanfield import MeanField
from bnn_ppl.inference.families.unitrank import UnitRank

__all__ = ["AUTO_FULLRANK_MAX", "FAMILIES", "Family", "FullRank", "LowRank", "MeanField", "UnitRank", "flat_layout",
           "resolve_family"]

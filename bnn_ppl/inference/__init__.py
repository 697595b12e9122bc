"""Variational fitting: families, engines, ``fit_record`` and the plain ``FitRecord``."""

from bnn_ppl.inference.engines import jax_engine as _jax_engine  # noqa: F401  (registers "jax")
from bnn_ppl.inference.engines import pymc_engine as _pymc_engine  # noqa: F401  (registers "pymc")
from bnn_ppl.inference.engines import pytensor_engine as _pytensor_engine  # noqa: F401  ("numba")
from bnn_ppl.inference.families import FAMILIES, Family, FullRank, LowRank, MeanField, UnitRank
from bnn_ppl.inference.fit import fit_record
from bnn_ppl.inference.posterior import VariationalPosterior
from bnn_ppl.inference.result import FitRecord

__all__ = ["FAMILIES", "Family", "FitRecord", "FullRank", "LowRank", "MeanField", "UnitRank", "VariationalPosterior",
           "fit_record"]

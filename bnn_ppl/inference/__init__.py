"""ADVI fitting: variational families, engines, the ``fit`` function and the ``FitResult`` record."""

from bnn_ppl.inference.engines import jax_engine as _jax_engine  # noqa: F401  (registers "jax")
from bnn_ppl.inference.engines import pymc_engine as _pymc_engine  # noqa: F401  (registers "pymc")
from bnn_ppl.inference.engines import pytensor_engine as _pytensor_engine  # noqa: F401  ("numba")
from bnn_ppl.inference.families import FAMILIES, Family, FullRank, LowRank, MeanField
from bnn_ppl.inference.fit import fit
from bnn_ppl.inference.posterior import VariationalPosterior
from bnn_ppl.inference.result import FitResult

__all__ = ["FAMILIES", "Family", "FitResult", "FullRank", "LowRank", "MeanField", "VariationalPosterior", "fit"]

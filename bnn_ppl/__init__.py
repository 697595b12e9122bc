"""bnn_ppl: Bayesian neural networks for PyMC users.

Declarative specs (:mod:`bnn_ppl.spec`) compile to a real ``pm.Model``
(:func:`build_model`), are fitted with ADVI (:func:`fit`) and predict through a posterior
predictive compiled once (:meth:`FitResult.predictor`).
"""

from bnn_ppl.compile import BuiltModel, build_model
from bnn_ppl.errors import BnnPplError, DataError, FitError, ModelFileError, SpecError
from bnn_ppl.inference import FitResult, fit
from bnn_ppl.predictive import Predictor
from bnn_ppl.spec import (
    Bernoulli,
    Categorical,
    Dense,
    FanInNormal,
    Hierarchical,
    Network,
    Normal,
    NormalLikelihood,
    dump_spec,
    load_spec,
)

__version__ = "0.1.0"

__all__ = [
    "Bernoulli",
    "BnnPplError",
    "BuiltModel",
    "Categorical",
    "DataError",
    "Dense",
    "FanInNormal",
    "FitError",
    "FitResult",
    "Hierarchical",
    "ModelFileError",
    "Network",
    "Normal",
    "NormalLikelihood",
    "Predictor",
    "SpecError",
    "__version__",
    "build_model",
    "dump_spec",
    "fit",
    "load_spec",
]

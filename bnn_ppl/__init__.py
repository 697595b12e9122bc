"""bnn_ppl: Bayesian neural networks for PyMC users.

Declarative specs (:mod:`bnn_ppl.spec`) compile to a real ``pm.Model``
(:func:`build_model`), are fitted with ADVI (:func:`fit`) and predict through a posterior
predictive compiled once (:meth:`FitResult.predictor`).
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

from bnn_ppl.errors import BnnPplError, DataError, FitError, ModelFileError, ParameterError, SpecError
from bnn_ppl.spec.layers import *  # noqa: F403  (every layer kind: LAYER_CLASSES)
from bnn_ppl.spec.layers import LAYER_CLASSES
from bnn_ppl.spec import (
    Bernoulli,
    Categorical,
    Conjugate,
    ConjugateKnownMean,
    FanInNormal,
    Hierarchical,
    Horseshoe,
    Laplace,
    Network,
    Normal,
    NormalLikelihood,
    ScaleMixture,
    StudentT,
    dump_spec,
    load_spec,
)

__version__ = "0.1.0"

# PyMC-backed names load lazily, so that ``import bnn_ppl.spec`` imports no pymc/pytensor/jax.
_LAZY = {
    "BuiltModel": "bnn_ppl.compile",
    "build_model": "bnn_ppl.compile",
    "FitResult": "bnn_ppl.result",
    "fit": "bnn_ppl.result",
    "fit_many": "bnn_ppl.many",
    "ManyFits": "bnn_ppl.many",
    "ELBO": "bnn_ppl.inference.estimator",
    "MeanField": "bnn_ppl.inference",
    "FullRank": "bnn_ppl.inference",
    "LowRank": "bnn_ppl.inference",
    "UnitRank": "bnn_ppl.inference",
    "Predictor": "bnn_ppl.predictive",
    "load": "bnn_ppl.io",
    "BNNClassifier": "bnn_ppl.sklearn",
    "BNNRegressor": "bnn_ppl.sklearn",
    "BNNClassifierCV": "bnn_ppl.sklearn_cv",
    "BNNRegressorCV": "bnn_ppl.sklearn_cv",
}

if TYPE_CHECKING:  # pragma: no cover
    from bnn_ppl.compile import BuiltModel, build_model
    from bnn_ppl.inference import FullRank, LowRank, MeanField, UnitRank
    from bnn_ppl.inference.estimator import ELBO
    from bnn_ppl.many import ManyFits, fit_many
    from bnn_ppl.result import FitResult, fit
    from bnn_ppl.io import load
    from bnn_ppl.sklearn import BNNClassifier, BNNRegressor
    from bnn_ppl.sklearn_cv import BNNClassifierCV, BNNRegressorCV
    from bnn_ppl.predictive import Predictor


#: Submodules reachable as attributes (``bp.predictive.trace_predictor``) before anything imported them.
_SUBMODULES = ("arviz", "cli", "compile", "datasets", "inference", "io", "many", "plots", "predictive", "result",
               "sklearn", "sklearn_cv", "spec", "synthetic")


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return import_module(f"bnn_ppl.{name}")
    raise AttributeError(f"module 'bnn_ppl' has no attribute {name!r}")

__all__ = [
    *LAYER_CLASSES,
    "BNNClassifier",
    "BNNClassifierCV",
    "BNNRegressor",
    "BNNRegressorCV",
    "Bernoulli",
    "BnnPplError",
    "BuiltModel",
    "Categorical",
    "Conjugate",
    "ConjugateKnownMean",
    "DataError",
    "ELBO",
    "FanInNormal",
    "FitError",
    "FitResult",
    "FullRank",
    "Hierarchical",
    "Horseshoe",
    "Laplace",
    "LowRank",
    "ManyFits",
    "MeanField",
    "ModelFileError",
    "Network",
    "Normal",
    "NormalLikelihood",
    "ParameterError",
    "Predictor",
    "ScaleMixture",
    "SpecError",
    "StudentT",
    "UnitRank",
    "__version__",
    "build_model",
    "dump_spec",
    "fit",
    "fit_many",
    "load",
    "load_spec",
]

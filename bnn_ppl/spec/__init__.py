"""Pure-data network specifications. Importing this package imports no pymc/pytensor/jax."""

from bnn_ppl.spec.activations import ACTIVATIONS
from bnn_ppl.spec.io import SCHEMA_VERSION, dump_spec, dumps_spec, load_spec, spec_from_dict, spec_to_dict
from bnn_ppl.spec.layers import Dense
from bnn_ppl.spec.likelihoods import LIKELIHOODS, Bernoulli, Categorical, Likelihood
from bnn_ppl.spec.likelihoods import Normal as NormalLikelihood
from bnn_ppl.spec.network import LayerShape, Network
from bnn_ppl.spec.priors import (
    HYPERPRIORS,
    PRIORS,
    Conjugate,
    ConjugateKnownMean,
    FanInNormal,
    Hierarchical,
    Horseshoe,
    Laplace,
    Normal,
    Prior,
    ScaleMixture,
    StudentT,
)

__all__ = [
    "ACTIVATIONS",
    "HYPERPRIORS",
    "LIKELIHOODS",
    "PRIORS",
    "SCHEMA_VERSION",
    "Bernoulli",
    "Categorical",
    "Conjugate",
    "ConjugateKnownMean",
    "Dense",
    "FanInNormal",
    "Hierarchical",
    "Horseshoe",
    "Laplace",
    "LayerShape",
    "Likelihood",
    "Network",
    "Normal",
    "NormalLikelihood",
    "Prior",
    "ScaleMixture",
    "StudentT",
    "dump_spec",
    "dumps_spec",
    "load_spec",
    "spec_from_dict",
    "spec_to_dict",
]

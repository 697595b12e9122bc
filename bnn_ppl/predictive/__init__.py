"""Compiled posterior predictive and uncertainty summaries."""

from bnn_ppl.predictive.predictor import PREDICTOR_KINDS, Predictor, make_predictor
from bnn_ppl.predictive.samplers import BatchedSampler, SampleNodeSampler
from bnn_ppl.predictive.quality import Quality, evaluate
from bnn_ppl.predictive.trace import trace_predictor
from bnn_ppl.predictive.summaries import (
    ClassificationUncertainty,
    RegressionUncertainty,
    summarise_classification,
    summarise_regression,
)

__all__ = [
    "PREDICTOR_KINDS",
    "Quality",
    "evaluate",
    "trace_predictor",
    "BatchedSampler",
    "ClassificationUncertainty",
    "Predictor",
    "RegressionUncertainty",
    "SampleNodeSampler",
    "make_predictor",
    "summarise_classification",
    "summarise_regression",
]

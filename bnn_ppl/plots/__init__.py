"""Matplotlib figures of a fit: loss history, decision and uncertainty surfaces, calibration,
and weight posteriors (through ArviZ).

Every function draws on ``ax`` (a new figure when None) and returns what it drew on.
"""

from bnn_ppl.plots.calibration import expected_calibration_error, plot_reliability, reliability_table
from bnn_ppl.plots.loss import plot_loss
from bnn_ppl.plots.surfaces import UNCERTAINTY_MEASURES, plot_decision_surface, plot_uncertainty_surface
from bnn_ppl.plots.weights import plot_weights

__all__ = [
    "UNCERTAINTY_MEASURES",
    "expected_calibration_error",
    "plot_decision_surface",
    "plot_loss",
    "plot_reliability",
    "plot_uncertainty_surface",
    "plot_weights",
    "reliability_table",
]

"""Calibration: reliability diagram and expected calibration error (top-label, equal-width bins)."""

from __future__ import annotations

from typing import Any

from matplotlib.axes import Axes

from bnn_ppl.plots._axes import get_ax
from bnn_ppl.predictive.calibration import ReliabilityTable, expected_calibration_error, reliability_table

__all__ = ["ReliabilityTable", "expected_calibration_error", "plot_reliability", "reliability_table"]


def plot_reliability(y_true: Any, proba: Any, ax: Axes | None = None, n_bins: int = 10) -> Axes:
    """Reliability diagram: accuracy against confidence per bin, with the ECE in the title.

    Bars show each non-empty bin's accuracy; the dashed diagonal is perfect calibration and the
    dots the bins' mean confidence (bars below the dots mean over-confidence).

    Parameters
    ----------
    y_true : array-like of int, shape (n,)
    proba : array-like, shape (n,) or (n, classes)
    ax : matplotlib Axes, optional
    n_bins : int

    Returns
    -------
    matplotlib Axes
        One bar per non-empty bin (``ax.patches``).

    Examples
    --------
    >>> ax = plot_reliability(y_test, result.predictor().predict_proba(X_test, random_seed=0))
    >>> 1 <= len(ax.patches) <= 10
    True
    """
    table = reliability_table(y_true, proba, n_bins)
    ax = get_ax(ax, figsize=(4.5, 4.5))
    filled = table.counts > 0
    centres = 0.5 * (table.edges[:-1] + table.edges[1:])
    ax.bar(centres[filled], table.accuracy[filled], width=1.0 / n_bins, color="C0", alpha=0.7,
           edgecolor="k", label="accuracy")
    ax.plot([0, 1], [0, 1], "--", color="0.4", label="perfect calibration")
    ax.plot(centres[filled], table.confidence[filled], "o", color="C1", label="mean confidence")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence (top-label probability)", ylabel="accuracy",
           title=f"Reliability: ECE = {table.ece:.3f} ({int(table.counts.sum())} predictions)")
    ax.legend(loc="upper left", fontsize="small")
    return ax

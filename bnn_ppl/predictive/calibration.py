"""Calibration of classifier probabilities: reliability table and expected calibration error.

Top-label confidence in equal-width bins. :func:`bnn_ppl.plots.plot_reliability` draws the table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from bnn_ppl.errors import DataError

__all__ = ["ReliabilityTable", "expected_calibration_error", "reliability_table"]


@dataclass(frozen=True)
class ReliabilityTable:
    """Per-bin calibration statistics of the top-label confidence.

    Attributes
    ----------
    edges : (n_bins + 1,)
        Bin edges over [0, 1].
    counts : (n_bins,)
        Predictions whose confidence falls in each bin.
    confidence : (n_bins,)
        Mean confidence per bin (NaN for empty bins).
    accuracy : (n_bins,)
        Fraction of correct predictions per bin (NaN for empty bins).
    """

    edges: np.ndarray
    counts: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray

    @property
    def ece(self) -> float:
        """Expected calibration error: sum over bins of (count / n) * |accuracy - confidence|."""
        filled = self.counts > 0
        weights = self.counts[filled] / self.counts.sum()
        return float(np.sum(weights * np.abs(self.accuracy[filled] - self.confidence[filled])))


#: More bins than any calibration plot reads (each bin costs memory; 10-20 is usual).
MAX_BINS = 10_000


def _validate(y_true: Any, proba: Any, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or not 1 <= n_bins <= MAX_BINS:
        raise DataError(f"The 'n_bins' parameter must be an integer from 1 to {MAX_BINS:,} (10 is usual). Got "
                        f"{n_bins!r} instead.")
    try:
        proba = np.asarray(proba, dtype=float)
    except (TypeError, ValueError):
        raise DataError("The 'proba' parameter must be numeric probabilities; pass predict_proba's output.") from None
    if proba.ndim == 1:
        proba = np.column_stack([1.0 - proba, proba])
    if proba.ndim != 2 or proba.shape[1] < 2:
        raise DataError(
            f"The 'proba' parameter must be P(y=1) of shape (n,) or class probabilities of shape (n, classes). "
            f"Got shape {proba.shape} instead."
        )
    if not np.all(np.isfinite(proba)) or proba.min() < 0.0 or proba.max() > 1.0:
        raise DataError("The 'proba' parameter must hold probabilities in [0, 1]; pass predict_proba's output.")
    sums = proba.sum(axis=1)
    if not np.allclose(sums, 1.0, atol=1e-6):
        row = int(np.argmax(np.abs(sums - 1.0)))
        raise DataError(f"Each row of 'proba' must sum to 1 (one probability per class); row {row} sums to "
                        f"{sums[row]:.6g}. Pass predict_proba's output.")
    y = np.asarray(y_true).reshape(-1)
    if not (np.issubdtype(y.dtype, np.number) or y.dtype == bool):
        raise DataError(f"The 'y_true' parameter must hold integer class labels 0..K-1. Got dtype {y.dtype}; encode "
                        "string labels first (the estimators' classes_ give the order).")
    if y.shape[0] != proba.shape[0]:
        raise DataError(f"y_true has {y.shape[0]} rows but proba has {proba.shape[0]}; pass matching arrays.")
    if y.size == 0:
        raise DataError("y_true is empty; calibration needs at least one prediction.")
    if not np.issubdtype(y.dtype, np.integer):
        if not np.all(np.equal(np.mod(y, 1), 0)):
            raise DataError("The 'y_true' parameter must hold integer class labels 0..K-1.")
        y = y.astype(int)
    if y.min() < 0 or y.max() >= proba.shape[1]:
        raise DataError(
            f"The 'y_true' labels must lie in 0..{proba.shape[1] - 1} (one column of proba per class). "
            f"Got labels from {y.min()} to {y.max()}."
        )
    return y, proba


def reliability_table(y_true: Any, proba: Any, n_bins: int = 10) -> ReliabilityTable:
    """Bin predictions by their top-label confidence (equal-width bins over [0, 1]).

    Parameters
    ----------
    y_true : array-like of int, shape (n,)
        True labels.
    proba : array-like, shape (n,) or (n, classes)
        P(y=1) for binary problems, or class probabilities.
    n_bins : int
        Number of bins; a confidence of exactly 1 falls in the last bin.
    """
    y, proba = _validate(y_true, proba, n_bins)
    confidence = proba.max(axis=1)
    correct = (proba.argmax(axis=1) == y).astype(float)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    index = np.minimum((confidence * n_bins).astype(int), n_bins - 1)
    counts = np.bincount(index, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(index, weights=confidence, minlength=n_bins) / counts
        accuracy = np.bincount(index, weights=correct, minlength=n_bins) / counts
    return ReliabilityTable(edges, counts, mean_conf, accuracy)


def expected_calibration_error(y_true: Any, proba: Any, n_bins: int = 10) -> float:
    """Expected calibration error of the top-label confidence.

    ``ECE = sum_b (n_b / n) |accuracy_b - confidence_b|`` over equal-width bins.

    Examples
    --------
    >>> round(expected_calibration_error([1, 0, 1, 1], [0.9, 0.25, 0.7, 0.35], n_bins=5), 3)
    0.05
    """
    return reliability_table(y_true, proba, n_bins).ece

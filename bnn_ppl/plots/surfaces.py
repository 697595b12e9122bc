"""Posterior-predictive surfaces over a 2-D input grid: mean prediction and uncertainty."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import ListedColormap

from bnn_ppl.errors import DataError
from bnn_ppl.plots._axes import get_ax
from bnn_ppl.predictive.summaries import ClassificationUncertainty
from bnn_ppl.registry import Registry

__all__ = ["UNCERTAINTY_MEASURES", "Measure", "plot_decision_surface", "plot_uncertainty_surface", "surface_grid"]


@dataclass(frozen=True)
class Measure:
    """An uncertainty measure: colorbar label and how to read it from a summary."""

    label: str
    classifier: bool | None  # True: classifiers only, False: regression only, None: both
    value: Callable[[Any], np.ndarray]


#: Measure name -> :class:`Measure` for :func:`plot_uncertainty_surface`.
UNCERTAINTY_MEASURES: Registry[Measure] = Registry("uncertainty measure", error=DataError)
UNCERTAINTY_MEASURES.add("std", Measure(
    "predictive std", None,
    lambda s: s.std[np.arange(len(s.proba)), s.proba.argmax(1)] if isinstance(s, ClassificationUncertainty) else s.std,
))
UNCERTAINTY_MEASURES.add("entropy", Measure("predictive entropy (nats)", True, lambda s: s.entropy))
UNCERTAINTY_MEASURES.add("expected_entropy", Measure("expected entropy: aleatoric (nats)", True, lambda s: s.expected_entropy))
UNCERTAINTY_MEASURES.add("mutual_information", Measure("mutual information: epistemic (nats)", True,
                                                       lambda s: s.mutual_information))
UNCERTAINTY_MEASURES.add("epistemic_std", Measure("epistemic std of the mean", False, lambda s: np.sqrt(s.epistemic_var)))


def _as_predictor(source: Any) -> Any:
    if callable(getattr(source, "predictor", None)):
        return source.predictor()
    if callable(getattr(source, "uncertainty", None)):
        return source
    raise DataError(
        f"Expected a FitResult or a Predictor (result.predictor()). Got {type(source).__name__} instead."
    )


def surface_grid(X: Any, grid: int = 100, padding: float = 0.5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A ``grid x grid`` mesh over the range of the two columns of ``X`` widened by ``padding``.

    Returns
    -------
    xx, yy : (grid, grid) arrays
    points : (grid * grid, 2) array, the mesh as rows
    """
    X = np.asarray(X, dtype=float)
    if X.ndim != 2 or X.shape[1] != 2:
        raise DataError(
            f"Surfaces need inputs with exactly 2 features. Got X of shape {X.shape}; "
            "plot two features of a 2-input model, or use plot_reliability for wider inputs."
        )
    if isinstance(grid, bool) or not isinstance(grid, (int, np.integer)) or grid < 2:
        raise DataError(f"The 'grid' parameter must be an integer >= 2. Got {grid!r} instead.")
    if isinstance(padding, bool) or not isinstance(padding, (int, float, np.number)) or not 0 <= padding < np.inf:
        raise DataError(f"The 'padding' parameter must be a finite number >= 0. Got {padding!r} instead.")
    lo, hi = X.min(axis=0) - padding, X.max(axis=0) + padding
    xx, yy = np.meshgrid(np.linspace(lo[0], hi[0], grid), np.linspace(lo[1], hi[1], grid))
    return xx, yy, np.column_stack([xx.ravel(), yy.ravel()])


def _class_cmap(n_classes: int) -> ListedColormap:
    if n_classes == 2:
        return ListedColormap(["#2166ac", "#b2182b"])
    return ListedColormap([plt.get_cmap("tab10" if n_classes <= 10 else "tab20")(i) for i in range(n_classes)])


def _checked_y(X: np.ndarray, y: Any, n_classes: int | None) -> np.ndarray | None:
    """``y`` as a 1-D array matching ``X`` (class indices 0..n_classes-1 for a classifier), checked
    before anything is computed or drawn."""
    if y is None:
        return None
    y = np.asarray(y).reshape(-1)
    if y.shape[0] != X.shape[0]:
        raise DataError(f"X has {X.shape[0]} rows but y has {y.shape[0]}; pass matching X and y.")
    if n_classes is not None:
        labels = np.unique(y)
        if not np.issubdtype(y.dtype, np.number) or not np.isin(labels, np.arange(n_classes)).all():
            raise DataError(f"y must hold the class indices 0..{n_classes - 1} the model predicts. Got labels "
                            f"{labels[:5].tolist()}; encode them first.")
    return y


def _n_classes(likelihood: Any) -> int | None:
    return max(2, likelihood.n_outputs) if likelihood.is_classifier else None


def _scatter(ax: Axes, X: np.ndarray, y: np.ndarray | None, n_classes: int | None, norm: Any = None,
             cmap: Any = None) -> None:
    if y is None:
        ax.scatter(X[:, 0], X[:, 1], s=12, c="k", alpha=0.6, label="data")
        return
    if n_classes is None:  # regression: colour by the target on the surface's scale
        ax.scatter(X[:, 0], X[:, 1], c=y, cmap=cmap, norm=norm, s=14, edgecolors="k", linewidths=0.4)
        return
    colours = _class_cmap(n_classes)
    for k in np.unique(y):
        rows = y == k
        ax.scatter(X[rows, 0], X[rows, 1], s=14, color=colours(int(k)), edgecolors="k", linewidths=0.4,
                   label=f"class {int(k)}")
    if n_classes <= 10:
        ax.legend(loc="upper right", fontsize="small", framealpha=0.8)


def plot_decision_surface(
    source: Any,
    X: Any,
    y: Any = None,
    ax: Axes | None = None,
    grid: int = 100,
    draws: int = 500,
    random_seed: int | None = None,
    padding: float = 0.5,
) -> Axes:
    """Posterior-predictive mean over a 2-D grid, with the data on top.

    Binary classifiers show P(y=1) (filled contours, the 0.5 boundary as a black line);
    multi-class ones the most probable class, with black lines where its probability is 0.5
    and 0.9; regression shows the predictive mean.

    Parameters
    ----------
    source : FitResult or Predictor
        The fitted model (a 2-input network).
    X : array-like of shape (n, 2)
        Points to draw on top; the grid spans their range plus ``padding``.
    y : array-like of shape (n,), optional
        Their labels (points coloured by class) or targets.
    ax : matplotlib Axes, optional
    grid : int
        Grid points per axis.
    draws : int
        Posterior draws averaged at every grid point.
    random_seed : int, optional

    Returns
    -------
    matplotlib Axes
        The filled ContourSet is ``ax.collections[0]``; the colorbar is the figure's last axes.

    Examples
    --------
    >>> ax = plot_decision_surface(result, X_test, y_test, draws=50, random_seed=0)
    >>> ax.get_xlabel(), len(ax.collections) >= 1
    ('$x_1$', True)
    """
    predictor = _as_predictor(source)
    X_arr = np.asarray(X, dtype=float)
    xx, yy, points = surface_grid(X_arr, grid, padding)
    likelihood = predictor.spec.likelihood
    y = _checked_y(X_arr, y, _n_classes(likelihood))
    summary = predictor.uncertainty(points, draws=draws, random_seed=random_seed)
    ax = get_ax(ax)
    norm, cmap = None, None
    if not likelihood.is_classifier:
        mean = summary.mean.reshape(xx.shape)
        filled = ax.contourf(xx, yy, mean, levels=20, cmap="viridis")
        norm, cmap = filled.norm, filled.cmap
        ax.figure.colorbar(filled, ax=ax, label="posterior predictive mean")
        n_classes = None
    elif likelihood.n_outputs == 1:
        p1 = summary.proba[:, 1].reshape(xx.shape)
        filled = ax.contourf(xx, yy, p1, levels=np.linspace(0.0, 1.0, 11), cmap="RdBu_r", alpha=0.8)
        ax.contour(xx, yy, p1, levels=[0.5], colors="k", linewidths=1.5)
        ax.figure.colorbar(filled, ax=ax, label="posterior predictive mean P(y=1)")
        n_classes = 2
    else:
        n_classes = likelihood.n_outputs
        best = summary.proba.argmax(axis=1).reshape(xx.shape)
        confidence = summary.proba.max(axis=1).reshape(xx.shape)
        filled = ax.contourf(xx, yy, best, levels=np.arange(n_classes + 1) - 0.5, cmap=_class_cmap(n_classes), alpha=0.45)
        lines = ax.contour(xx, yy, confidence, levels=[0.5, 0.9], colors="k", linewidths=[0.8, 1.4])
        ax.clabel(lines, fmt="%.1f", fontsize="small")
        bar = ax.figure.colorbar(filled, ax=ax, label="most probable class")
        bar.set_ticks(np.arange(n_classes))
    _scatter(ax, X_arr, y, n_classes, norm, cmap)
    ax.set(xlim=(xx.min(), xx.max()), ylim=(yy.min(), yy.max()), xlabel="$x_1$", ylabel="$x_2$",
           title="Posterior predictive mean")
    return ax


def plot_uncertainty_surface(
    source: Any,
    X: Any,
    y: Any = None,
    ax: Axes | None = None,
    measure: str = "std",
    grid: int = 100,
    draws: int = 500,
    random_seed: int | None = None,
    padding: float = 0.5,
) -> Axes:
    """An uncertainty measure of the posterior predictive over a 2-D grid, with the data on top.

    Parameters
    ----------
    source : FitResult or Predictor
        The fitted model (a 2-input network).
    X, y : array-like
        Points (and labels) drawn on top; the grid spans their range plus ``padding``.
    ax : matplotlib Axes, optional
    measure : str
        A name in ``UNCERTAINTY_MEASURES``: ``"std"`` (of the predicted class's probability;
        of y for regression), ``"entropy"`` (total), ``"expected_entropy"`` (aleatoric),
        ``"mutual_information"`` (epistemic), ``"epistemic_std"`` (regression).
    grid, draws, random_seed, padding
        As in :func:`plot_decision_surface`.

    Returns
    -------
    matplotlib Axes

    Examples
    --------
    >>> ax = plot_uncertainty_surface(result, X_test, y_test, measure="mutual_information", draws=50)
    >>> len(ax.collections) >= 1
    True
    """
    chosen = UNCERTAINTY_MEASURES.get(measure, field="measure")
    predictor = _as_predictor(source)
    is_classifier = predictor.spec.likelihood.is_classifier
    if chosen.classifier is not None and chosen.classifier != is_classifier:
        valid = [n for n in UNCERTAINTY_MEASURES if UNCERTAINTY_MEASURES.get(n).classifier in (None, is_classifier)]
        raise DataError(
            f"measure={measure!r} is not defined for a {'classifier' if is_classifier else 'regression model'}. "
            f"Use one of {valid}."
        )
    X_arr = np.asarray(X, dtype=float)
    xx, yy, points = surface_grid(X_arr, grid, padding)
    n_classes = _n_classes(predictor.spec.likelihood)
    y = _checked_y(X_arr, y, n_classes)
    summary = predictor.uncertainty(points, draws=draws, random_seed=random_seed)
    values = np.asarray(chosen.value(summary), dtype=float).reshape(xx.shape)
    ax = get_ax(ax)
    filled = ax.contourf(xx, yy, values, levels=12, cmap="magma_r")
    ax.figure.colorbar(filled, ax=ax, label=chosen.label)
    _scatter(ax, X_arr, y, n_classes, None, "viridis")
    ax.set(xlim=(xx.min(), xx.max()), ylim=(yy.min(), yy.max()), xlabel="$x_1$", ylabel="$x_2$",
           title=f"Uncertainty: {measure.replace('_', ' ')}")
    return ax

"""The optimisation history: negative ELBO per step, raw and smoothed."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.axes import Axes

from bnn_ppl.errors import DataError
from bnn_ppl.plots._axes import get_ax

__all__ = ["plot_loss", "moving_average"]


def moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over ``window`` steps; element ``i`` averages steps ``i .. i + window - 1``."""
    cumsum = np.cumsum(np.concatenate([[0.0], np.asarray(values, dtype=float)]))
    return (cumsum[window:] - cumsum[:-window]) / window


def plot_loss(
    result: Any,
    ax: Axes | None = None,
    smooth: int | str | None = "auto",
    logy: bool = False,
) -> Axes:
    """Plot the negative ELBO at every step and its moving average.

    Parameters
    ----------
    result : FitResult or array-like
        A fit (its ``losses``) or the loss history itself.
    ax : matplotlib Axes, optional
        Where to draw; a new figure when None.
    smooth : int, "auto" or None
        Moving-average window in steps; ``"auto"`` uses 1/50 of the steps (at least 2);
        None or 1 draws only the raw losses.
    logy : bool
        Logarithmic loss axis (useful when the first steps are far above the rest).

    Returns
    -------
    matplotlib Axes
        The raw history is ``ax.lines[0]``, the smoothed one ``ax.lines[1]``.

    Examples
    --------
    >>> ax = plot_loss(result)
    >>> len(ax.lines[0].get_ydata()) == result.n_steps
    True
    """
    try:
        losses = np.asarray(getattr(result, "losses", result), dtype=float)
    except (TypeError, ValueError):
        raise DataError(f"plot_loss needs a FitResult or a 1-D history of loss values. Got {type(result).__name__}.") from None
    if losses.ndim != 1:
        raise DataError(f"plot_loss needs a 1-D history of loss values. Got shape {losses.shape} (an ensemble's "
                        "member_losses: plot one member's row, or the fit's losses).")
    if losses.size and not np.isfinite(losses).any():
        raise DataError("plot_loss got no finite loss value to plot.")
    if losses.size == 0:
        raise DataError("plot_loss needs at least one loss value. Got an empty history; run fit first.")
    if smooth == "auto":
        window = max(2, losses.size // 50)
    elif smooth is None:
        window = 1
    elif isinstance(smooth, (int, np.integer)) and not isinstance(smooth, bool) and smooth >= 1:
        window = int(smooth)
    else:
        raise DataError(f"The 'smooth' parameter of plot_loss must be a positive int, 'auto' or None. Got {smooth!r} instead.")
    ax = get_ax(ax)
    steps = np.arange(1, losses.size + 1)
    ax.plot(steps, losses, color="C0", alpha=0.35 if window > 1 else 1.0, linewidth=0.8, label="-ELBO per step")
    if 1 < window <= losses.size:
        ax.plot(steps[window - 1 :], moving_average(losses, window), color="C1", linewidth=1.8,
                label=f"moving average ({window} steps)")
    if logy:
        ax.set_yscale("log")
    ax.set(xlabel="step", ylabel="-ELBO (nats)", title="ADVI loss history")
    ax.legend(loc="upper right")
    return ax

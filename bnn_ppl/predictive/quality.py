"""Held-out quality of a fit in one call: log predictive density, accuracy, calibration, coverage."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from bnn_ppl.compile.data import as_targets
from bnn_ppl.predictive.calibration import expected_calibration_error
from bnn_ppl.predictive.predictor import finite_rows
from bnn_ppl.predictive.summaries import as_class_probs
from bnn_ppl.seeds import check_seed

__all__ = ["Quality", "evaluate", "COVERAGE_LEVELS"]

#: Central predictive intervals whose coverage a regression fit reports.
COVERAGE_LEVELS = (0.5, 0.9, 0.95)
_HALF_LOG_2PI = 0.5 * np.log(2 * np.pi)


@dataclass(frozen=True)
class Quality:
    """Posterior-predictive quality on labelled rows.

    Attributes
    ----------
    lpd : float
        Mean log predictive density per row, ``mean_i log (1/S) sum_s p(y_i | theta_s)`` (nats;
        higher is better). ``nll`` is ``-lpd``.
    rows, draws : int
        Rows scored and posterior draws used.
    accuracy, ece : float or None
        Classification: accuracy of the predictive mean and its top-label expected
        calibration error (10 equal-width bins); None for regression.
    rmse : float or None
        Regression: root mean squared error of the predictive mean; None for classification.
    coverage : dict
        Regression: nominal level -> fraction of rows inside the central predictive interval
        of that level (0.9 -> 0.9 is calibrated): rows whose predictive CDF at ``y`` (the
        mixture over draws of the Normal likelihood) lies between ``(1 - level) / 2`` and
        ``(1 + level) / 2``; empty for classification.
    """

    lpd: float
    rows: int
    draws: int
    accuracy: float | None = None
    ece: float | None = None
    rmse: float | None = None
    coverage: dict[float, float] = field(default_factory=dict)

    @property
    def nll(self) -> float:
        return -self.lpd

    def to_dict(self) -> dict[str, Any]:
        """Plain numbers (coverage keys as strings, e.g. ``"coverage_0.9"``), for JSON and tables."""
        out = {k: v for k, v in asdict(self).items() if k != "coverage"}
        out["nll"] = self.nll
        out.update({f"coverage_{level:g}": value for level, value in self.coverage.items()})
        return out


def evaluate(predictor: Any, X: Any, y: Any, draws: int = 1000, random_seed: Any = 0,
             levels: tuple[float, ...] = COVERAGE_LEVELS) -> Quality:
    """Score a predictor on held-out ``(X, y)``: one function for every likelihood.

    Parameters
    ----------
    predictor : Predictor
        From :meth:`FitResult.predictor`.
    X, y : array-like
        Inputs and targets (class indices 0..K-1 for classifiers).
    draws : int
        Posterior draws; scored chunk by chunk within the predictor's memory budget (also for a
        memory-mapped ``X``).
    random_seed : int or numpy Generator, optional
        The same int gives the posterior draws of ``predictor.predict(X, random_seed=...)``.
    levels : tuple of float
        Central-interval levels whose coverage is reported (regression).

    Examples
    --------
    >>> q = result.evaluate(X_test, y_test)
    >>> q.accuracy > 0.9, q.nll < 0.3, q.ece < 0.1
    (True, True, True)
    """
    spec = predictor.spec
    Xf = predictor._features(X)
    yt = as_targets(y, spec.likelihood, Xf.shape[0])
    seed = check_seed(random_seed, "evaluate", generator=True)
    n = Xf.shape[0]
    # streamed over the predictor's chunks of draws and rows (bounded memory); the same posterior
    # draws as predictor.uncertainty / predict with this seed (same accuracy)
    chunks = predictor._iter_draws(Xf, draws, seed)
    if spec.likelihood.is_classifier:
        total = np.zeros((n, max(2, spec.likelihood.n_outputs)))
        for _, rs, (param, *_) in chunks:
            total[rs] += as_class_probs(param).astype(float).sum(0)
        mean = finite_rows(total / draws)
        labels = np.asarray(yt, dtype=int)
        picked = np.take_along_axis(mean, labels[:, None], axis=1)[:, 0]
        return Quality(
            lpd=float(np.mean(np.log(np.maximum(picked, 1e-300)))),
            rows=int(labels.size), draws=int(draws),
            accuracy=float(np.mean(mean.argmax(axis=1) == labels)),
            ece=float(expected_calibration_error(labels, mean if mean.shape[1] > 2 else mean[:, 1])),
        )
    from scipy.special import logsumexp, ndtr  # scipy.special costs ~0.17 s to import: only when scoring

    yv = np.asarray(yt, dtype=float)
    log_sum, mean_sum, cdf_sum = np.full(n, -np.inf), np.zeros(n), np.zeros(n)
    for ds, rs, (param, sigma) in chunks:
        sigma = np.broadcast_to(np.asarray(sigma, dtype=float).reshape(-1), (ds.stop - ds.start,))[:, None]
        param = np.asarray(param, dtype=float)
        log_dens = -0.5 * ((yv[rs] - param) / sigma) ** 2 - np.log(sigma) - _HALF_LOG_2PI  # (draws, rows)
        log_sum[rs] = np.logaddexp(log_sum[rs], logsumexp(log_dens, axis=0))
        mean_sum[rs] += param.sum(0)
        # the predictive CDF at y (the mixture of the draws' Normals): y lies inside the central
        # interval of level L exactly when (1 - L) / 2 <= F(y) <= (1 + L) / 2
        cdf_sum[rs] += ndtr((yv[rs] - param) / sigma).sum(0)
    finite_rows(mean_sum)
    pit = cdf_sum / draws
    coverage = {float(level): float(np.mean((pit >= (1 - level) / 2) & (pit <= (1 + level) / 2))) for level in levels}
    return Quality(
        lpd=float(np.mean(log_sum - np.log(draws))), rows=int(yv.size), draws=int(draws),
        rmse=float(np.sqrt(np.mean((mean_sum / draws - yv) ** 2))), coverage=coverage,
    )

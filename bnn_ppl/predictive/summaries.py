"""Uncertainty summaries of posterior-predictive draws (pure numpy)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "ClassificationUncertainty",
    "RegressionUncertainty",
    "as_class_probs",
    "entropy",
    "summarise_classification",
    "summarise_regression",
]

_TINY = 1e-12


def as_class_probs(draws: np.ndarray) -> np.ndarray:
    """(draws, rows) Bernoulli p(y=1) -> (draws, rows, 2); (draws, rows, K) passes through."""
    draws = np.asarray(draws)
    if draws.ndim == 2:
        return np.stack([1.0 - draws, draws], axis=-1)
    if draws.ndim != 3:
        raise ValueError(f"Expected draws of shape (draws, rows[, classes]). Got {draws.shape}.")
    return draws


def entropy(p: np.ndarray, axis: int = -1) -> np.ndarray:
    """Shannon entropy in nats along ``axis``."""
    p = np.clip(p, _TINY, 1.0)
    return -(p * np.log(p)).sum(axis=axis)


@dataclass(frozen=True)
class ClassificationUncertainty:
    """Posterior-predictive summaries for a classifier, one row per input.

    Attributes
    ----------
    proba : (rows, classes)
        Posterior-predictive mean probabilities.
    std : (rows, classes)
        Standard deviation of the probabilities over posterior draws.
    entropy : (rows,)
        Predictive entropy H[E_q p] (total uncertainty), nats.
    expected_entropy : (rows,)
        E_q H[p] (aleatoric part), nats.
    mutual_information : (rows,)
        entropy - expected_entropy (epistemic part, BALD), nats, >= 0.
    """

    proba: np.ndarray
    std: np.ndarray
    entropy: np.ndarray
    expected_entropy: np.ndarray
    mutual_information: np.ndarray


@dataclass(frozen=True)
class RegressionUncertainty:
    """Posterior-predictive summaries for regression, one row per input.

    Attributes
    ----------
    mean : (rows,)
        Predictive mean.
    epistemic_var : (rows,)
        Variance of the network's mean over posterior draws.
    aleatoric_var : (rows,)
        Expected observation noise variance E_q[sigma^2].
    total_var : (rows,)
        epistemic_var + aleatoric_var (law of total variance).
    """

    mean: np.ndarray
    epistemic_var: np.ndarray
    aleatoric_var: np.ndarray
    total_var: np.ndarray

    @property
    def std(self) -> np.ndarray:
        """Total predictive standard deviation."""
        return np.sqrt(self.total_var)


def summarise_classification(draws: np.ndarray) -> ClassificationUncertainty:
    """Summaries from probability draws of shape (draws, rows) or (draws, rows, classes)."""
    probs = as_class_probs(draws)
    mean = probs.mean(axis=0)
    total = entropy(mean)
    expected = entropy(probs).mean(axis=0)
    return ClassificationUncertainty(
        proba=mean,
        std=probs.std(axis=0),
        entropy=total,
        expected_entropy=expected,
        mutual_information=np.maximum(total - expected, 0.0),
    )


def summarise_regression(mean_draws: np.ndarray, sigma_draws: np.ndarray) -> RegressionUncertainty:
    """Summaries from mean draws (draws, rows) and noise-scale draws (draws,)."""
    mean_draws = np.asarray(mean_draws)
    sigma_draws = np.asarray(sigma_draws).reshape(-1)
    epistemic = mean_draws.var(axis=0)
    aleatoric = np.full(mean_draws.shape[1], float(np.mean(sigma_draws**2)))
    return RegressionUncertainty(
        mean=mean_draws.mean(axis=0),
        epistemic_var=epistemic,
        aleatoric_var=aleatoric,
        total_var=epistemic + aleatoric,
    )

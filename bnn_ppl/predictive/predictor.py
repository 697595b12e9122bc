"""The user-facing posterior-predictive object: sampling and summaries in bounded memory."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from bnn_ppl.compile.data import as_features, check_columns, float_dtype
from bnn_ppl.compile.streamed import StreamedRows, is_streamed, row_source
from bnn_ppl.errors import DataError, ParameterError
from bnn_ppl.predictive.samplers import BatchedSampler, SampleNodeSampler
from bnn_ppl.seeds import check_seed
from bnn_ppl.spec.layers import values_per_row
from bnn_ppl.predictive.summaries import (
    ClassificationUncertainty,
    RegressionUncertainty,
    as_class_probs,
    entropy,
)

__all__ = ["Predictor", "make_predictor", "check_draws", "PREDICTOR_KINDS"]

PREDICTOR_KINDS = ("auto", "batched", "sample_node")
#: Fewer draws than this give a noisy estimate of the epistemic uncertainty (see ``uncertainty``).
USEFUL_DRAWS = 100


def check_draws(draws: Any, owner: str) -> int:
    """``draws`` as an int, refusing anything but a positive integer (numpy integers are accepted).

    Parameters
    ----------
    draws : int
        The number of posterior draws asked for.
    owner : str
        The function or class taking ``draws``, named in the error.

    Raises
    ------
    ParameterError
        For booleans, non-integers and integers below 1.
    """
    if isinstance(draws, (bool, np.bool_)) or not isinstance(draws, (int, np.integer)) or draws < 1:
        raise ParameterError(
            f"The 'draws' parameter of {owner} must be a positive integer such as 500. Got {draws!r} instead."
        )
    return int(draws)


def make_predictor(result: Any, backend: str | None = None, kind: str = "auto") -> Predictor:
    """Build (and compile, once) the predictor of a :class:`~bnn_ppl.FitResult`.

    Parameters
    ----------
    backend : {"numba", "c", "jax"}, optional
        PyTensor compile mode; None is PyTensor's default (numba).
    kind : {"auto", "batched", "sample_node"}
        ``"batched"`` (the default for ``"auto"``) pushes all draws through one batched
        forward pass; ``"sample_node"`` is PyMC's ``approx.sample_node`` scan over draws.
    """
    if kind not in PREDICTOR_KINDS:
        raise ParameterError(f"The 'kind' parameter must be one of {list(PREDICTOR_KINDS)}. Got {kind!r} instead.")
    if kind == "sample_node" and backend == "jax":
        raise ParameterError(
            "kind='sample_node' cannot use backend='jax': JAX needs a fixed number of draws and the "
            "draws are a graph input. Use kind='batched' (the default) with backend='jax'."
        )
    if kind == "sample_node" and not result.posterior.has_approx:
        raise ParameterError(
            "kind='sample_node' runs PyMC's approx.sample_node and needs a PyMC approximation; this fit has none "
            f"({result.family.label()}, {result.members} member(s)). Use kind='batched' (the default)."
        )
    sampler_cls = SampleNodeSampler if kind == "sample_node" else BatchedSampler
    return Predictor(sampler_cls(result, backend=backend), result.built.spec, feature_names=result.built.feature_names)


class Predictor:
    """Posterior-predictive sampler whose graph takes X and the number of draws as inputs.

    Built by :meth:`FitResult.predictor`; compiled once and reused for any number of rows
    (also for minibatch-trained models) and draws.

    Parameters
    ----------
    sampler : SampleNodeSampler or BatchedSampler
        The compiled graph.
    spec : Network
        The network spec (likelihood and input width).
    memory_budget_mb : float
        Upper bound for the intermediate arrays of one chunk; rows and draws are processed in
        chunks that fit (the full (draws, rows) array of :meth:`sample` is the caller's).
    feature_names : list, optional
        The training features' names (``built.feature_names``): a DataFrame ``X`` with named
        columns must hold exactly these, in this order (columns are read by position).

    Examples
    --------
    >>> pred = result.predictor()
    >>> pred.sample(X_test, draws=500, random_seed=0).shape
    (500, 500)
    >>> pred.uncertainty(X_test, random_seed=0).mutual_information.shape
    (500,)
    """

    def __init__(self, sampler: Any, spec: Any, memory_budget_mb: float = 256.0, *,
                 feature_names: list | None = None) -> None:
        self.sampler = sampler
        self.spec = spec
        self.feature_names = feature_names
        self.memory_budget_mb = float(memory_budget_mb)
        self._values_per_row = values_per_row(spec.resolve())

    @property
    def kind(self) -> str:
        return self.sampler.kind

    @property
    def n_compiles(self) -> int:
        """How many PyTensor functions building it compiled: at most 1, never again per call (0 when
        the parameter tensors are slices of the flat draws)."""
        return self.sampler.n_compiles

    # ------------------------------------------------------------------ chunking
    #: Fewest rows a chunk should hold: fewer makes per-chunk overhead (and BatchNorm's reference
    #: rows, recomputed for every chunk) dominate; draws per chunk shrink instead.
    MIN_CHUNK_ROWS = 256

    def _chunks(self, n_rows: int, draws: int) -> tuple[int, int]:
        """(draws, rows) per chunk so one chunk's intermediates fit ``memory_budget_mb``."""
        budget = self.memory_budget_mb * 2**20
        itemsize = 8
        per_cell = itemsize * (2 * self._values_per_row + 4)
        reference = self.sampler.reference_rows  # rows every chunk carries for batch statistics
        min_rows = min(n_rows, max(self.MIN_CHUNK_ROWS, reference))
        draw_chunk = draws
        if self.kind != "sample_node":  # the (draws, D) parameter draws are held too
            n_params = self.spec.n_params()
            draw_chunk = int(max(1, min(draws, budget // 4 // (itemsize * max(n_params, 1)))))
        draw_chunk = int(max(1, min(draw_chunk, budget // (per_cell * (min_rows + reference)))))
        row_chunk = int(max(min_rows, min(n_rows, budget // (per_cell * draw_chunk) - reference)))
        return draw_chunk, row_chunk

    def _iter_draws(self, X: np.ndarray, draws: int, random_seed: Any):
        """Yield (draw_slice, row_slice, outputs) covering all draws x rows in bounded chunks."""
        draws = check_draws(draws, "Predictor")
        rng = np.random.default_rng(check_seed(random_seed, "Predictor", generator=True))
        members = getattr(getattr(self.sampler, "_posterior", None), "members", 1)
        if draws < members:
            warnings.warn(f"draws={draws} is fewer than the ensemble's {members} members: members {draws} to "
                          f"{members - 1} contribute nothing. Use draws >= {members} (hundreds for a useful mixture).",
                          UserWarning, stacklevel=3)
        n_rows = X.shape[0]
        draw_chunk, row_chunk = self._chunks(n_rows, int(draws))
        for d0 in range(0, draws, draw_chunk):
            d1 = min(draws, d0 + draw_chunk)
            if self.kind == "sample_node":
                seed = int(rng.integers(2**31 - 1))
                for r0 in range(0, n_rows, row_chunk):
                    r1 = min(n_rows, r0 + row_chunk)
                    yield slice(d0, d1), slice(r0, r1), self.sampler.draw(X[r0:r1], d1 - d0, seed)
            else:
                thetas = self.sampler.draw_params(d1 - d0, rng, start=d0, total=draws)
                for r0 in range(0, n_rows, row_chunk):
                    r1 = min(n_rows, r0 + row_chunk)
                    yield slice(d0, d1), slice(r0, r1), self.sampler.evaluate(thetas, X[r0:r1], work=draws * n_rows)

    def _features(self, X: Any) -> np.ndarray | StreamedRows:
        """``X`` checked as floatX rows; memory-mapped, dask and zarr inputs are read chunk by chunk."""
        if isinstance(X, StreamedRows):
            return X
        if is_streamed(X):
            return StreamedRows(row_source(X, self.spec.input_shape, float_dtype(), validate=False))
        check_columns(X, self.feature_names)
        return as_features(X, self.spec.input_shape)

    # ------------------------------------------------------------------ public API
    def sample(self, X: Any, draws: int = 500, random_seed: Any = None) -> np.ndarray:
        """Draws of the likelihood parameter: p(y=1) (draws, rows), class probabilities
        (draws, rows, classes), or the regression mean (draws, rows)."""
        X = self._features(X)
        out = None
        for ds, rs, (param, *_) in self._iter_draws(X, draws, random_seed):
            if out is None:
                out = np.empty((draws, X.shape[0], *param.shape[2:]), dtype=param.dtype)
            out[ds, rs] = param
        return out

    def sample_noise(self, draws: int = 500, random_seed: Any = None) -> np.ndarray:
        """Draws of the regression noise scale ``sigma`` (Normal likelihood only)."""
        if self.spec.likelihood.is_classifier:
            raise DataError("sample_noise is only defined for the Normal likelihood.")
        draws = check_draws(draws, "Predictor.sample_noise")
        X = np.zeros((1, *self.spec.input_shape))
        out = np.empty(draws)
        for ds, _, (_, sigma) in self._iter_draws(X, draws, random_seed):
            out[ds] = np.asarray(sigma).reshape(-1)
        return out

    def uncertainty(
        self, X: Any, draws: int = 500, random_seed: Any = None
    ) -> ClassificationUncertainty | RegressionUncertainty:
        """Predictive summaries, streamed over chunks of draws and rows (bounded memory).

        Classifiers get mean probabilities, their std, predictive entropy, expected entropy
        (aleatoric) and mutual information (epistemic); regression gets the mean and the
        epistemic / aleatoric / total variance.

        With ``draws=1`` the epistemic part cannot be estimated (it comes out as 0) and a
        ``UserWarning`` says so; a useful estimate needs at least ~100 draws.
        """
        draws = check_draws(draws, "Predictor")
        if draws == 1:
            warnings.warn(
                "uncertainty(draws=1): a single posterior draw cannot estimate the epistemic uncertainty "
                "(mutual information, std, epistemic variance), which comes out as 0. Use at least "
                f"~{USEFUL_DRAWS} draws for a useful estimate.",
                UserWarning,
                stacklevel=2,
            )
        X = self._features(X)
        n = X.shape[0]
        if self.spec.likelihood.is_classifier:
            k = max(2, self.spec.likelihood.n_outputs)
            s1, s2, h = np.zeros((n, k)), np.zeros((n, k)), np.zeros(n)
            for _, rs, (param, *_) in self._iter_draws(X, draws, random_seed):
                p = as_class_probs(param).astype(float)
                s1[rs] += p.sum(0)
                s2[rs] += (p**2).sum(0)
                h[rs] += entropy(p).sum(0)
            mean = finite_rows(s1 / draws)
            std = np.sqrt(np.maximum(s2 / draws - mean**2, 0.0))
            total = entropy(mean)
            expected = h / draws
            return ClassificationUncertainty(mean, std, total, expected, np.maximum(total - expected, 0.0))
        m1, m2, s2sum = np.zeros(n), np.zeros(n), 0.0
        seen = set()
        for ds, rs, (mean_draws, sigma) in self._iter_draws(X, draws, random_seed):
            m1[rs] += mean_draws.sum(0)
            m2[rs] += (mean_draws.astype(float) ** 2).sum(0)
            if (ds.start, ds.stop) not in seen:
                seen.add((ds.start, ds.stop))
                s2sum += float((np.asarray(sigma, dtype=float).reshape(-1) ** 2).sum())
        mean = finite_rows(m1 / draws)
        epistemic = np.maximum(m2 / draws - mean**2, 0.0)
        aleatoric = np.full(n, s2sum / draws)
        return RegressionUncertainty(mean, epistemic, aleatoric, epistemic + aleatoric)

    def predict_proba(self, X: Any, draws: int = 500, random_seed: Any = None) -> np.ndarray:
        """Posterior-predictive class probabilities, shape (rows, classes) (2 for Bernoulli)."""
        if not self.spec.likelihood.is_classifier:
            raise DataError("predict_proba needs a Bernoulli or Categorical likelihood; use predict for regression.")
        return self.uncertainty(X, draws, random_seed).proba

    def predict(self, X: Any, draws: int = 500, random_seed: Any = None) -> np.ndarray:
        """Most probable class index (classifiers) or the predictive mean (regression).

        The class is the argmax of a Monte Carlo mean over ``draws``; rows near a decision
        boundary can flip between calls with different seeds (on digits, two calls with 500
        unseeded draws put the same fit's test accuracy 0.0045 apart, 4 of 899 digits). Pass
        ``random_seed`` for repeatable predictions, and more draws when comparing models.
        """
        summary = self.uncertainty(X, draws, random_seed)
        if isinstance(summary, ClassificationUncertainty):
            return summary.proba.argmax(axis=1)
        return summary.mean


def finite_rows(values: np.ndarray) -> np.ndarray:
    """``values`` (rows, ...) unless the network's outputs overflowed for some rows (inputs far
    outside the training range): then a DataError naming them, not NaN probabilities."""
    bad = ~np.isfinite(values.reshape(values.shape[0], -1)).all(axis=1)
    if bad.any():
        rows = np.flatnonzero(bad)
        raise DataError(f"The network's outputs overflowed to inf or NaN for {rows.size} row(s) of X (rows "
                        f"{rows[:5].tolist()}...): their inputs are far outside the training data's range. Scale X "
                        "as the training data were scaled.")
    return values

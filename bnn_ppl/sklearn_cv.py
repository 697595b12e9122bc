"""``BNNClassifierCV`` and ``BNNRegressorCV``: the prior width (and step size) chosen by
cross-validation, every fold and setting fitted in one compiled call.

In the spirit of scikit-learn's ``LogisticRegressionCV``: ``fit`` scores each grid setting by
its mean held-out log loss over the ``cv`` folds (all of them run together by
:func:`bnn_ppl.fit_many`), then refits the best setting on all rows; the estimator then
predicts as :class:`~bnn_ppl.BNNClassifier` / :class:`~bnn_ppl.BNNRegressor` do.
``GridSearchCV`` over the same grid runs one compiled loop per setting and fold instead.
"""

from __future__ import annotations

import math

from collections.abc import Sequence
from typing import Any

import numpy as np

from bnn_ppl.errors import ParameterError
from bnn_ppl.many import fit_many
from bnn_ppl.sklearn import BNNClassifier, BNNRegressor

__all__ = ["BNNClassifierCV", "BNNRegressorCV"]

_SCORES = ("test_nll", "accuracy", "rmse")


class _CVSearch:
    """The search both CV estimators run before their ordinary refit."""

    def _fit(self, X: np.ndarray, y: np.ndarray, likelihood: Any, class_names: list[str] | None, **_: Any):
        grid = {"prior_scale": _values(self.prior_scales, "prior_scales", type(self).__name__)}
        if self.learning_rates is not None:
            grid["learning_rate"] = _values(self.learning_rates, "learning_rates", type(self).__name__)
        scores = [score for score in _SCORES if score != ("rmse" if likelihood.is_classifier else "accuracy")]
        if not isinstance(self.scoring, str) or self.scoring not in scores:
            raise ParameterError(f"The 'scoring' parameter of {type(self).__name__} must be one of {scores}. "
                                 f"Got {self.scoring!r} instead.")
        fit_seed, _ = self._seeds()
        many = fit_many(
            self._spec(X.shape[1], likelihood), X, y, grid=grid, seeds=[fit_seed], folds=self.cv, n=self.n_iter,
            batch_size=self.batch_size, method=self.method, learning_rate=self.learning_rate,
            init_sigma=self.init_sigma, mc_draws=self.mc_draws, elbo=self.elbo, draws=self.draws,
            progressbar=self.progressbar,
        )
        scale = 1.0 if likelihood.is_classifier else float(getattr(self, "y_scale_", 1.0) or 1.0)
        if scale != 1.0:  # a regressor fits the standardised y: its scores in the units of y
            table = many.table
            for column, convert in (("rmse", lambda v: v * scale), ("test_nll", lambda v: v + math.log(scale)),
                                    ("test_lpd", lambda v: v - math.log(scale))):
                if column in table:
                    table[column] = convert(table[column])
        best = many.best(self.scoring)
        self.prior_scale_ = float(best["prior_scale"])
        self.learning_rate_ = float(best.get("learning_rate", self.learning_rate))
        self.cv_results_ = {column: many.table[column].to_numpy() for column in many.table.columns}
        self.cv_summary_ = many.summary(self.scoring)
        return super()._fit(X, y, likelihood, class_names, prior_scale=self.prior_scale_,
                            learning_rate=self.learning_rate_)

    def _state(self) -> dict[str, Any]:
        state = super()._state()
        cv = state["params"]["cv"]
        if not isinstance(cv, (int, np.integer)):
            state["params"]["cv"] = None  # restored from "cv_splitter", or the default 5 folds
            state["cv_splitter"] = _splitter_state(cv)
        for name in ("prior_scales", "learning_rates"):  # numpy arrays and tuples stored as lists of floats
            if state["params"][name] is not None:
                state["params"][name] = [float(v) for v in np.atleast_1d(np.asarray(state["params"][name]))]
        return state

    def _restore(self, result: Any, state: dict[str, Any]) -> None:
        super()._restore(result, state)
        splitter = _splitter_from_state(state.get("cv_splitter"))
        if splitter is not None:
            self.set_params(cv=splitter)


#: scikit-learn splitters a model file can name (rebuilt from their class and parameters on load).
SPLITTERS = ("KFold", "StratifiedKFold", "RepeatedKFold", "RepeatedStratifiedKFold", "ShuffleSplit",
             "StratifiedShuffleSplit", "TimeSeriesSplit", "LeaveOneOut", "LeavePOut")


def _splitter_state(cv: Any) -> dict[str, Any] | None:
    """``{"class": ..., "params": ...}`` for a scikit-learn splitter of :data:`SPLITTERS` whose
    parameters are plain values; None for anything else (an iterable of folds, a seeded
    ``RandomState``, a user's own class)."""
    import inspect

    name = type(cv).__name__
    if name not in SPLITTERS or type(cv).__module__.split(".")[0] != "sklearn":
        return None
    # splitters keep their constructor's arguments as attributes (what their repr shows)
    names = [p for p in inspect.signature(type(cv).__init__).parameters if p != "self"]
    if not all(hasattr(cv, p) for p in names):
        return None
    params = {p: getattr(cv, p) for p in names}
    if not all(v is None or isinstance(v, (bool, int, float, str)) for v in params.values()):
        return None
    return {"class": name, "params": params}


def _splitter_from_state(state: Any) -> Any:
    """The splitter :func:`_splitter_state` stored (None when nothing usable was stored)."""
    if not isinstance(state, dict) or state.get("class") not in SPLITTERS or not isinstance(state.get("params"), dict):
        return None
    import sklearn.model_selection

    try:
        return getattr(sklearn.model_selection, state["class"])(**state["params"])
    except (TypeError, ValueError):
        return None


def _values(values: Any, name: str, owner: str) -> list[float]:
    if isinstance(values, (int, float, np.number)) and not isinstance(values, (bool, np.bool_)):
        values = [values]
    if isinstance(values, np.ndarray) and values.ndim == 1:
        values = values.tolist()
    if not isinstance(values, Sequence) or isinstance(values, str) or not values:
        raise ParameterError(f"The {name!r} parameter of {owner} must be a non-empty list of positive numbers such as "
                             f"(0.5, 1.0, 2.0). Got {values!r} instead.")
    return list(values)


_CV_PARAMS = """
    prior_scales : sequence of float
        Factors on the width of every weight prior (:meth:`bnn_ppl.Network.with_prior_scale`;
        with the default ``Normal(1.0)`` weight prior, the prior's sigma).
    learning_rates : sequence of float, optional
        Adam step sizes searched too (None: ``learning_rate`` only).
    cv : int, splitter or iterable of (train, test)
        Folds, as scikit-learn's ``cv`` (an int is a ``StratifiedKFold`` for classifiers). A model
        file keeps an int and scikit-learn's splitters (:data:`SPLITTERS`, with plain-valued
        parameters); other folds load as None (5 folds on a refit).
    scoring : {"test_nll", "accuracy", "rmse"}
        Mean held-out score that picks the setting (lowest log loss / RMSE, highest accuracy).
"""

_CV_ATTRIBUTES = """
    prior_scale_, learning_rate_ : float
        The chosen setting (the refit on all rows uses it).
    cv_results_ : dict of ndarray
        One entry per column of :attr:`bnn_ppl.ManyFits.table` (one row per setting and fold);
        a regressor's ``rmse``, ``test_nll`` and ``test_lpd`` in the units of ``y`` (``neg_elbo``
        is the objective of the standardised fit).
    cv_summary_ : pandas.DataFrame
        Mean, standard deviation and count of the score per setting.
"""


class BNNClassifierCV(_CVSearch, BNNClassifier):
    __doc__ = f"""A :class:`~bnn_ppl.BNNClassifier` whose prior width is chosen by cross-validation.

    Takes every parameter of :class:`~bnn_ppl.BNNClassifier`, plus

    Parameters
    ----------{_CV_PARAMS}
    Attributes
    ----------{_CV_ATTRIBUTES}
    Examples
    --------
    >>> clf = BNNClassifierCV((5,), prior_scales=(0.3, 3.0), cv=3, n_iter=2_000, random_state=0)
    >>> clf.fit(X_train, y_train).prior_scale_, clf.score(X_test, y_test) > 0.9
    (3.0, True)
    """

    def __init__(
        self,
        hidden_layer_sizes: tuple[int, ...] = (16,),
        activation: str = "tanh",
        prior: Any = None,
        bias_prior: Any = None,
        n_iter: int = 30_000,
        batch_size: int | None = None,
        learning_rate: float = 0.01,
        method: Any = "auto",
        engine: str = "auto",
        backend: str | None = None,
        init_sigma: float = 0.1,
        draws: int = 500,
        random_state: Any = None,
        progressbar: bool = False,
        ensemble: int = 1,
        mc_draws: int = 1,
        elbo: Any = None,
        prior_scales: Sequence[float] = (0.25, 0.5, 1.0, 2.0, 4.0),
        learning_rates: Sequence[float] | None = None,
        cv: Any = 5,
        scoring: str = "test_nll",
    ) -> None:
        super().__init__(hidden_layer_sizes, activation, prior, bias_prior, n_iter, batch_size, learning_rate,
                         method, engine, backend, init_sigma, draws, random_state, progressbar, ensemble, mc_draws,
                         elbo)
        self.prior_scales = prior_scales
        self.learning_rates = learning_rates
        self.cv = cv
        self.scoring = scoring


class BNNRegressorCV(_CVSearch, BNNRegressor):
    __doc__ = f"""A :class:`~bnn_ppl.BNNRegressor` whose prior width is chosen by cross-validation.

    Takes every parameter of :class:`~bnn_ppl.BNNRegressor`, plus

    Parameters
    ----------{_CV_PARAMS}
    Attributes
    ----------{_CV_ATTRIBUTES}
    """

    def __init__(
        self,
        hidden_layer_sizes: tuple[int, ...] = (16,),
        activation: str = "tanh",
        prior: Any = None,
        bias_prior: Any = None,
        n_iter: int = 30_000,
        batch_size: int | None = None,
        learning_rate: float = 0.01,
        method: Any = "auto",
        engine: str = "auto",
        backend: str | None = None,
        init_sigma: float = 0.1,
        draws: int = 500,
        random_state: Any = None,
        progressbar: bool = False,
        ensemble: int = 1,
        mc_draws: int = 1,
        elbo: Any = None,
        sigma_prior: float = 1.0,
        normalize_y: bool = True,
        prior_scales: Sequence[float] = (0.25, 0.5, 1.0, 2.0, 4.0),
        learning_rates: Sequence[float] | None = None,
        cv: Any = 5,
        scoring: str = "test_nll",
    ) -> None:
        super().__init__(hidden_layer_sizes, activation, prior, bias_prior, n_iter, batch_size, learning_rate,
                         method, engine, backend, init_sigma, draws, random_state, progressbar, ensemble, mc_draws,
                         elbo, sigma_prior, normalize_y)
        self.prior_scales = prior_scales
        self.learning_rates = learning_rates
        self.cv = cv
        self.scoring = scoring

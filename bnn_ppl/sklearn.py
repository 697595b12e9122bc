"""scikit-learn estimators: ``BNNClassifier`` and ``BNNRegressor``.

They follow the estimator contract (``__init__`` only stores, ``fit`` validates and returns
``self``, learned state ends in ``_``), so they work in ``Pipeline``, ``cross_val_score`` and
``GridSearchCV``. Standardising X is the caller's job (put a ``StandardScaler`` in a Pipeline).
Pickling goes through the model file format of :mod:`bnn_ppl.io` (the fitted PyMC state is
rebuilt, never pickled); :meth:`save` / :meth:`load` write and read that one file.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from bnn_ppl import io as model_io
from bnn_ppl.compile import build_model
from bnn_ppl.compile.data import float_dtype
from bnn_ppl.errors import DataError, ModelFileError, ParameterError, SpecError
from bnn_ppl.predictive.quality import evaluate as evaluate_quality
from bnn_ppl.result import fit as fit_advi
from bnn_ppl.spec import Bernoulli, Categorical, Dense, Network, Normal, NormalLikelihood, Prior

__all__ = ["BNNClassifier", "BNNRegressor"]

_MAX_SEED = 2**31 - 1
_FITTED = ("classes_", "n_features_in_", "feature_names_in_", "predict_seed_", "y_mean_", "y_scale_", "prior_scale_",
           "learning_rate_")


class _BNNBase(BaseEstimator):
    """Shared parameters, fitting, saving and pickling of the two estimators."""

    def __init__(
        self,
        hidden_layer_sizes: tuple[int, ...] = (16,),
        activation: str = "tanh",
        prior: Prior | None = None,
        bias_prior: Prior | None = None,
        n_iter: int = 30_000,
        batch_size: int | None = None,
        learning_rate: float = 0.01,
        method: Any = "auto",
        engine: str = "auto",
        backend: str | None = None,
        init_sigma: float = 0.1,
        draws: int = 500,
        random_state: int | np.random.RandomState | None = None,
        progressbar: bool = False,
        ensemble: int = 1,
        mc_draws: int = 1,
        elbo: Any = None,
    ) -> None:
        self.ensemble = ensemble
        self.mc_draws = mc_draws
        self.elbo = elbo
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.prior = prior
        self.bias_prior = bias_prior
        self.n_iter = n_iter
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.method = method
        self.engine = engine
        self.backend = backend
        self.init_sigma = init_sigma
        self.draws = draws
        self.random_state = random_state
        self.progressbar = progressbar

    # ------------------------------------------------------------------ building and fitting
    def _spec(self, n_features: int, likelihood: Any, prior_scale: float = 1.0) -> Network:
        sizes = self.hidden_layer_sizes
        if isinstance(sizes, (int, np.integer)) and not isinstance(sizes, bool):
            sizes = (int(sizes),)
        if not isinstance(sizes, (tuple, list)) or any(
            isinstance(u, bool) or not isinstance(u, (int, np.integer)) or u < 1 for u in sizes
        ):
            raise SpecError(
                f"The 'hidden_layer_sizes' parameter of {type(self).__name__} must be a tuple of positive "
                f"integers such as (16,) or (32, 32). Got {self.hidden_layer_sizes!r} instead."
            )
        if isinstance(self.draws, bool) or not isinstance(self.draws, (int, np.integer)) or self.draws < 1:
            raise ParameterError(
                f"The 'draws' parameter of {type(self).__name__} must be a positive integer. Got {self.draws!r}."
            )
        layers = [Dense(int(u), self.activation) for u in sizes]
        layers.append(Dense(likelihood.n_outputs, "identity"))
        spec = Network(
            layers,
            likelihood,
            prior=Normal(1.0) if self.prior is None else self.prior,
            bias_prior=Normal(1.0) if self.bias_prior is None else self.bias_prior,
            input_dim=n_features,
            name=type(self).__name__,
        )
        return spec if prior_scale == 1.0 else spec.with_prior_scale(prior_scale)

    def _seeds(self) -> tuple[int, int]:
        """(fit seed, predict seed) from ``random_state`` (the same pair on every call for an int)."""
        fit_seed, predict_seed = (int(s) for s in check_random_state(self.random_state).randint(_MAX_SEED, size=2))
        return fit_seed, predict_seed

    def _fit(self, X: np.ndarray, y: np.ndarray, likelihood: Any, class_names: list[str] | None, *,
             prior_scale: float = 1.0, learning_rate: float | None = None):
        fit_seed, predict_seed = self._seeds()
        spec = self._spec(X.shape[1], likelihood, prior_scale)
        names = getattr(self, "feature_names_in_", None)
        built = build_model(spec, X, y, self.batch_size,
                            feature_names=None if names is None else [str(n) for n in names],
                            class_names=class_names)
        passed = ("method", "engine", "backend", "init_sigma", "progressbar", "ensemble", "mc_draws", "elbo")
        rate = self.learning_rate if learning_rate is None else learning_rate
        self.result_ = fit_advi(built, n=self.n_iter, learning_rate=rate, random_seed=fit_seed,
                                **{name: getattr(self, name) for name in passed})
        self.predict_seed_ = predict_seed
        self.n_iter_ = self.result_.n_steps
        self.loss_curve_ = self.result_.losses
        return self

    def _predictor(self, X: Any) -> tuple[Any, np.ndarray]:
        check_is_fitted(self, "result_")
        X = validate_data(self, X, reset=False, dtype=float_dtype())
        return self.result_.predictor(), X

    def uncertainty(self, X: Any) -> Any:
        """Predictive summaries of :meth:`bnn_ppl.Predictor.uncertainty` (with this estimator's draws
        and seed); a regressor's are in the units of ``y``."""
        predictor, X = self._predictor(X)
        return predictor.uncertainty(X, draws=self.draws, random_seed=self.predict_seed_)

    def evaluate(self, X: Any, y: Any) -> Any:
        """Held-out quality (:class:`bnn_ppl.predictive.quality.Quality`): log predictive density and,
        for a classifier, accuracy and ECE; for a regressor, RMSE and interval coverage in the units of ``y``."""
        predictor, X = self._predictor(X)
        y = np.asarray(y.to_numpy() if hasattr(y, "to_numpy") else y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]  # a column vector or a one-column DataFrame
        if y.ndim != 1:
            raise DataError(f"y must be 1-D (one target per row). Got shape {y.shape}.")
        if hasattr(self, "classes_"):
            index = {c: i for i, c in enumerate(self.classes_.tolist())}
            unknown = sorted({v for v in y.tolist() if v not in index}, key=str)
            if unknown:
                raise DataError(f"y holds labels {unknown[:5]} the estimator was not fitted on ({self.classes_.tolist()}).")
            return evaluate_quality(predictor, X, np.array([index[v] for v in y.tolist()]), draws=self.draws,
                                    random_seed=self.predict_seed_)
        y_std = (np.asarray(y, dtype=float) - self.y_mean_) / self.y_scale_
        q = evaluate_quality(predictor, X, y_std, draws=self.draws, random_seed=self.predict_seed_)
        return type(q)(lpd=q.lpd - float(np.log(self.y_scale_)), rows=q.rows, draws=q.draws,
                       rmse=q.rmse * self.y_scale_, coverage=q.coverage)

    # ------------------------------------------------------------------ save / load / joblib state
    def _state(self) -> dict[str, Any]:
        params = {name: value.item() if isinstance(value, np.generic) else value  # np.float32(0.01) -> 0.01
                  for name, value in self.get_params().items()}
        params["hidden_layer_sizes"] = list(np.atleast_1d(params["hidden_layer_sizes"]).tolist())
        params["prior"] = params["bias_prior"] = None  # restored from the saved spec
        family_set = not isinstance(params["method"], str)
        if family_set:
            params["method"] = None  # a Family instance: restored from the saved fit
        params["elbo"] = None  # restored from the saved fit
        rs = params["random_state"]
        if rs is not None and not isinstance(rs, (int, np.integer)):
            params["random_state"] = None
        state: dict[str, Any] = {"class": type(self).__name__, "params": params, "custom_family": family_set,
                                 "custom_priors": [self.prior is not None, self.bias_prior is not None]}
        for name in _FITTED:
            if hasattr(self, name):
                value = getattr(self, name)
                state[name] = value.tolist() if isinstance(value, np.ndarray) else value
        if hasattr(self, "classes_"):
            state["classes_dtype"] = self.classes_.dtype.str if self.classes_.dtype != object else "object"
        return state

    def _restore(self, result: Any, state: dict[str, Any]) -> None:
        prior_set, bias_set = state.get("custom_priors", [False, False])
        self.set_params(prior=result.spec.prior if prior_set else None,
                        bias_prior=result.spec.bias_prior if bias_set else None)
        if state.get("custom_family"):
            self.set_params(method=result.family)
        self.set_params(elbo=None if result.elbo.is_default else result.elbo)
        for name in _FITTED:
            if name in state:
                value = state[name]
                if name == "classes_":
                    value = np.asarray(value, dtype=state["classes_dtype"])
                elif name == "feature_names_in_":
                    value = np.asarray(value, dtype=object)
                setattr(self, name, value)
        self.result_ = result
        self.n_iter_ = result.n_steps
        self.loss_curve_ = result.losses

    def save(self, path: str | os.PathLike, *, include_data: bool = True) -> Any:
        """Write the fitted estimator to one model file (see :func:`bnn_ppl.io.save`)."""
        check_is_fitted(self, "result_")
        return model_io.save(self.result_, path, metadata={"estimator": self._state()}, include_data=include_data)

    @classmethod
    def load(cls, path: str | os.PathLike) -> _BNNBase:
        """Read an estimator written by :meth:`save`.

        Raises
        ------
        ModelFileError
            For damaged files and for files that hold no estimator of this class.
        """
        result, meta = model_io.load_with_metadata(path)
        return cls._from_state(result, meta, str(path))

    @classmethod
    def _from_state(cls, result: Any, meta: dict, where: str) -> _BNNBase:
        state = meta.get("estimator") if isinstance(meta, dict) else None
        if not isinstance(state, dict) or state.get("class") != cls.__name__:
            found = state.get("class") if isinstance(state, dict) else "a bare FitResult"
            raise ModelFileError(
                f"{where} holds {found}, not a {cls.__name__}; load it with "
                f"{'bnn_ppl.load' if state is None else found + '.load'}."
            )
        try:
            params = dict(state["params"])
            unknown = sorted(set(params) - set(cls._get_param_names()))
            if unknown:
                raise ValueError(f"unknown parameters {unknown}")
            params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
            est = cls(**params)
            est._restore(result, state)
        except (TypeError, ValueError, KeyError) as err:
            raise ModelFileError(f"{where}: the {cls.__name__} state in metadata.json is damaged ({err}).") from None
        classes = getattr(est, "classes_", None)
        if classes is not None and len(classes) != max(2, result.spec.likelihood.n_outputs):
            raise ModelFileError(f"{where}: metadata.json lists {len(classes)} classes for a model with "
                                 f"{max(2, result.spec.likelihood.n_outputs)}; the file was edited.")
        return est

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        if "result_" in state:
            state["result_"] = model_io.to_bytes(self.result_, metadata={"estimator": self._state()})
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        blob = state.get("result_")
        if isinstance(blob, bytes):
            state["result_"], _ = model_io.from_bytes(blob, where="a pickled estimator")
        self.__dict__.update(state)


class BNNClassifier(ClassifierMixin, _BNNBase):
    """Bayesian neural-network classifier fitted with ADVI.

    Two classes use a Bernoulli likelihood (one logit); more use a Categorical. Labels may be
    strings or integers; ``classes_`` holds them in sorted order.

    Parameters
    ----------
    hidden_layer_sizes : tuple of int
        Units of each hidden layer.
    activation : str
        Hidden-layer activation (a name in ``bnn_ppl.spec.ACTIVATIONS``).
    prior, bias_prior : Prior, optional
        Weight and bias priors; default ``Normal(1.0)`` for both.
    n_iter : int
        ADVI steps.
    batch_size : int, optional
        Minibatch size (None: full batch).
    learning_rate, init_sigma : float
        Adam step size and the initial posterior standard deviation.
    method : str or Family
        The variational family, passed to :func:`bnn_ppl.fit` (``"advi"``, ``"fullrank_advi"``,
        ``"lowrank_advi"``, ``"unitrank_advi"`` or an instance such as ``bnn_ppl.LowRank(rank=4)``).
    engine, backend : str
        Passed to :func:`bnn_ppl.fit`.
    draws : int
        Posterior draws averaged by ``predict_proba``.
    random_state : int, RandomState or None
        Seeds the fit and the predictive draws (predictions are reproducible after fitting).
    progressbar : bool
        Show the fit's progress bar.
    ensemble : int
        Independent fits run together and mixed with equal weights (``fit(ensemble=...)``).
    mc_draws, elbo : int, bnn_ppl.ELBO or None
        Monte Carlo draws per step and the -ELBO estimator (``fit(mc_draws=..., elbo=...)``).

    Attributes
    ----------
    classes_ : ndarray
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when X has string column names (pandas).
    result_ : FitResult
    n_iter_ : int
    loss_curve_ : ndarray
    predict_seed_ : int

    Examples
    --------
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> clf = make_pipeline(StandardScaler(), BNNClassifier((5,), n_iter=3_000, random_state=0))
    >>> clf.fit(X_train, y_train).score(X_test, y_test) > 0.9
    True
    """

    def fit(self, X: Any, y: Any) -> BNNClassifier:
        """Fit the posterior approximation; returns ``self``."""
        X, y = validate_data(self, X, y, dtype=float_dtype())
        check_classification_targets(y)
        classes, y_idx = np.unique(y, return_inverse=True)
        if classes.size < 2:
            raise DataError(
                f"{type(self).__name__} needs samples of at least 2 classes in y; got only one class "
                f"{classes.tolist()!r}."
            )
        self.classes_ = classes
        likelihood = Bernoulli() if classes.size == 2 else Categorical(n_classes=int(classes.size))
        return self._fit(X, y_idx.astype(np.int64), likelihood, [str(c) for c in classes])

    def predict_proba(self, X: Any) -> np.ndarray:
        """Posterior-predictive class probabilities, shape (rows, n_classes)."""
        return self.uncertainty(X).proba

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class label of each row."""
        proba = self.predict_proba(X)  # checks fitted-ness before classes_ is touched
        return self.classes_[np.argmax(proba, axis=1)]


class BNNRegressor(RegressorMixin, _BNNBase):
    """Bayesian neural-network regressor: ``y ~ Normal(f(x), sigma)``, fitted with ADVI.

    Takes every parameter of :class:`BNNClassifier`, plus

    Parameters
    ----------
    sigma_prior : float
        Scale of the HalfNormal prior on the noise sigma (in standardised-y units when
        ``normalize_y``).
    normalize_y : bool
        Fit on standardised targets and map predictions back (the priors assume unit scale).

    Attributes
    ----------
    y_mean_, y_scale_ : float
        The target standardisation (0 and 1 when ``normalize_y`` is False).

    Examples
    --------
    >>> import numpy as np
    >>> X = np.linspace(-2, 2, 60)[:, None]; y = np.sin(2 * X[:, 0])
    >>> reg = BNNRegressor((8,), n_iter=3_000, random_state=0).fit(X, y)
    >>> mean, std = reg.predict(X, return_std=True)
    >>> mean.shape, bool(np.all(std > 0))
    ((60,), True)
    """

    def __init__(
        self,
        hidden_layer_sizes: tuple[int, ...] = (16,),
        activation: str = "tanh",
        prior: Prior | None = None,
        bias_prior: Prior | None = None,
        n_iter: int = 30_000,
        batch_size: int | None = None,
        learning_rate: float = 0.01,
        method: Any = "auto",
        engine: str = "auto",
        backend: str | None = None,
        init_sigma: float = 0.1,
        draws: int = 500,
        random_state: int | np.random.RandomState | None = None,
        progressbar: bool = False,
        ensemble: int = 1,
        mc_draws: int = 1,
        elbo: Any = None,
        sigma_prior: float = 1.0,
        normalize_y: bool = True,
    ) -> None:
        super().__init__(hidden_layer_sizes, activation, prior, bias_prior, n_iter, batch_size, learning_rate,
                         method, engine, backend, init_sigma, draws, random_state, progressbar, ensemble, mc_draws,
                         elbo)
        self.sigma_prior = sigma_prior
        self.normalize_y = normalize_y

    def fit(self, X: Any, y: Any) -> BNNRegressor:
        """Fit the posterior approximation; returns ``self``."""
        X, y = validate_data(self, X, y, dtype=float_dtype(), y_numeric=True)
        y = np.asarray(y, dtype=float)
        self.y_mean_, self.y_scale_ = 0.0, 1.0
        if self.normalize_y:
            scale = float(y.std())
            self.y_mean_, self.y_scale_ = float(y.mean()), scale if scale > 0 else 1.0
        y_std = (y - self.y_mean_) / self.y_scale_
        return self._fit(X, y_std, NormalLikelihood(sigma_prior=self.sigma_prior), None)

    def uncertainty(self, X: Any) -> Any:
        """Mean and epistemic / aleatoric / total variance, in the units of ``y``."""
        from bnn_ppl.predictive import RegressionUncertainty

        s = super().uncertainty(X)
        v = self.y_scale_**2
        return RegressionUncertainty(s.mean * self.y_scale_ + self.y_mean_, s.epistemic_var * v,
                                     s.aleatoric_var * v, s.total_var * v)

    def predict(self, X: Any, return_std: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Predictive mean (and the total predictive standard deviation with ``return_std``)."""
        s = self.uncertainty(X)
        return (s.mean, s.std) if return_std else s.mean

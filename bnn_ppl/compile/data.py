"""Validate and convert user data before any graph is built."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytensor

from bnn_ppl.errors import DataError
from bnn_ppl.spec import Bernoulli, Categorical, Likelihood

__all__ = ["as_features", "as_targets", "float_dtype", "column_names", "check_columns", "check_class_names"]


def float_dtype() -> str:
    """PyTensor's ``floatX`` (``float64`` unless configured otherwise)."""
    return str(pytensor.config.floatX)


def column_names(X: Any) -> list[str] | None:
    """A DataFrame's column names when they are all strings (what scikit-learn records as
    ``feature_names_in_``); None for arrays and for default integer columns."""
    columns = getattr(X, "columns", None)
    if columns is None or not hasattr(X, "to_numpy"):
        return None
    names = list(columns)
    return names if names and all(isinstance(c, str) for c in names) else None


def check_columns(X: Any, feature_names: list | None, name: str = "X") -> None:
    """Refuse a DataFrame whose named columns are not the training features in training order.

    Columns are used by position; a reordered or different DataFrame would otherwise be read
    silently as the wrong features. Arrays, and models trained without named features, pass.
    """
    names = column_names(X)
    if names is None or not feature_names or not all(isinstance(f, str) for f in feature_names):
        return
    if names == list(feature_names):
        return
    if sorted(names) == sorted(feature_names):
        raise DataError(f"{name}'s columns are the training features in another order; select them in the "
                        f"training order: {name}[{list(feature_names)!r}].")
    missing = [f for f in feature_names if f not in names]
    extra = [c for c in names if c not in feature_names]
    raise DataError(f"{name}'s columns are not the training features: missing {missing}, unexpected {extra}. "
                    f"Pass a DataFrame with the columns {list(feature_names)!r}, in that order.")


def as_features(X: Any, input_shape: tuple[int, ...] | int | None = None, name: str = "X") -> np.ndarray:
    """Return ``X`` as a finite floatX array of shape (rows, *input_shape).

    Flat inputs are (rows, features); images (rows, channels, height, width). With no
    ``input_shape`` any array of at least two axes is accepted.
    """
    if isinstance(input_shape, (int, np.integer)):
        input_shape = (int(input_shape),)
    if hasattr(X, "to_numpy"):  # pandas
        X = X.to_numpy(dtype=float_dtype(), na_value=np.nan) if _numeric_frame(X) else X.to_numpy()
    if hasattr(X, "toarray") and hasattr(X, "nnz"):  # scipy.sparse
        raise DataError(f"{name} is a sparse matrix ({type(X).__name__}); the network's layers take dense arrays: "
                        f"pass {name}.toarray() (it needs rows x features x {np.dtype(float_dtype()).itemsize} bytes).")
    if np.iscomplexobj(X):
        raise DataError(f"{name} holds complex numbers; pass real features (e.g. {name}.real and {name}.imag as "
                        "separate columns).")
    try:
        arr = np.asarray(X, dtype=float_dtype())
    except (TypeError, ValueError) as err:
        raise DataError(f"{name} must be numeric: {err}") from None
    if arr.ndim == 1 and input_shape == (1,):
        arr = arr[:, None]
    if input_shape is None:
        if arr.ndim < 2:
            raise DataError(f"{name} must be a 2-D array (rows, features). Got shape {arr.shape}; reshape it.")
    elif arr.shape[1:] != tuple(input_shape):
        expected = "(rows, " + ", ".join(map(str, input_shape)) + ")"
        hint = "reshape it"
        if len(input_shape) == 1 and arr.ndim == 2:
            raise DataError(f"{name} has {arr.shape[1]} features but the network expects {input_shape[0]}.")
        if len(input_shape) > 1 and arr.ndim == 2 and arr.shape[1] == int(np.prod(input_shape)):
            hint = f"pass X.reshape(-1, {', '.join(map(str, input_shape))}) or start the network with a Reshape layer"
        raise DataError(f"{name} must have shape {expected}. Got shape {arr.shape}; {hint}.")
    if arr.shape[0] == 0:
        raise DataError(f"{name} has no rows.")
    bad = ~np.isfinite(arr)
    if bad.any():
        rows = np.unique(np.nonzero(bad)[0])[:5].tolist()
        raise DataError(f"{name} contains NaN or infinite values (rows {rows}...); impute or drop them first.")
    return arr


def as_targets(y: Any, likelihood: Likelihood, n_rows: int, name: str = "y") -> np.ndarray:
    """Validate targets for ``likelihood``: {0,1} for Bernoulli, 0..K-1 for Categorical, finite reals.

    Integer labels are returned as int64 arrays (never silently downcast); the compile layer
    stores them in the narrowest type that holds every label.
    """
    if hasattr(y, "to_numpy"):
        y = y.to_numpy()
    arr = np.asarray(y)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise DataError(f"{name} must be 1-D (one target per row). Got shape {arr.shape}.")
    if arr.shape[0] != n_rows:
        raise DataError(f"{name} has {arr.shape[0]} rows but X has {n_rows}; they must match.")
    if not np.issubdtype(arr.dtype, np.number) and arr.dtype != bool:
        if not likelihood.is_classifier:
            raise DataError(
                f"{name} must be numeric for a Normal (regression) likelihood. Got dtype {arr.dtype}; convert "
                "the targets to numbers (for class labels use a Bernoulli or Categorical likelihood)."
            )
        raise DataError(f"{name} must be numeric. Got dtype {arr.dtype}; encode labels as 0..K-1 first.")
    if not np.all(np.isfinite(arr.astype(float))):
        raise DataError(f"{name} contains NaN or infinite values; drop those rows first.")
    if not likelihood.is_classifier:
        return arr.astype(float_dtype())
    if np.any(arr != np.round(arr)):
        raise DataError(f"{name} must hold integer class labels for a {type(likelihood).__name__} likelihood.")
    labels = arr.astype(np.int64)
    if isinstance(likelihood, Bernoulli):
        bad = np.setdiff1d(np.unique(labels), [0, 1])
        if bad.size:
            raise DataError(f"{name} must hold 0/1 labels for a Bernoulli likelihood. Got also {bad[:5].tolist()}.")
    elif isinstance(likelihood, Categorical):
        k = likelihood.n_classes
        if labels.min() < 0 or labels.max() >= k:
            raise DataError(
                f"{name} must hold labels 0..{k - 1} for Categorical(n_classes={k}). "
                f"Got labels from {labels.min()} to {labels.max()}; fix n_classes or re-encode the labels."
            )
    return labels


def check_class_names(class_names: Any, likelihood: Any) -> None:
    """One name per class: two for Bernoulli (kept on the record), K for Categorical (the output coords)."""
    if not likelihood.is_classifier:
        raise DataError("class_names labels the classes of a Bernoulli or Categorical likelihood; a Normal "
                        "(regression) likelihood has none. Leave class_names unset.")
    expected = 2 if isinstance(likelihood, Bernoulli) else likelihood.n_outputs
    if isinstance(class_names, str) or len(class_names) != expected:
        got = repr(class_names) if isinstance(class_names, str) else f"{len(class_names)} names"
        raise DataError(f"class_names has {got} for the {expected} classes of the {type(likelihood).__name__} "
                        f"likelihood; pass one name per class, in label order 0..{expected - 1}.")


def _numeric_frame(X: Any) -> bool:
    """A pandas DataFrame or Series of numeric columns only (nullable Int64/Float64 included: pd.NA
    becomes NaN, which the finiteness check then names, instead of a bare conversion error)."""
    import pandas as pd

    dtypes = X.dtypes if hasattr(X, "columns") else [X.dtype]
    return all(pd.api.types.is_numeric_dtype(d) and not pd.api.types.is_bool_dtype(d) for d in dtypes)

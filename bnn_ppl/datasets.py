"""Embedded example data sets (moons, digits) and CSV files, split into train and test halves."""

from __future__ import annotations

import csv
import math
import numbers
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bnn_ppl.errors import DataError

__all__ = ["Dataset", "DATASETS", "is_number", "load_dataset", "make_moons", "numeric_columns", "read_csv",
           "shuffle_split", "write_large_synthetic"]

#: Names of the embedded data sets.
DATASETS = ("moons", "digits", "synthetic_mnist")
_TASKS = ("auto", "classification", "regression")
_MAX_AUTO_CLASSES = 20


@dataclass(frozen=True)
class Dataset:
    """A train/test split with names.

    Attributes
    ----------
    name : str
        ``"moons"``, ``"digits"`` or the CSV path.
    X_train, X_test : ndarray of shape (rows, features), or (rows, 1, 28, 28) for synthetic_mnist
    y_train, y_test : ndarray of shape (rows,)
        Class indices 0..K-1 (int64) for classification, floats for regression.
    feature_names : list of str or None
        Column names of flat features; None for images.
    class_names : list of str or None
        Label of each class index; None for regression.
    target : str or None
        The CSV column the targets came from.
    """

    name: str
    X_train: np.ndarray
    X_test: np.ndarray
    y_train: np.ndarray
    y_test: np.ndarray
    feature_names: list[str] | None
    class_names: list[str] | None
    target: str | None = None

    @property
    def is_classification(self) -> bool:
        return self.class_names is not None


def load_dataset(
    name: str | os.PathLike,
    random_seed: int = 0,
    *,
    target: str | None = None,
    task: str = "auto",
    test_size: float = 0.5,
) -> Dataset:
    """Load an embedded data set or a CSV file, split 50/50 into train and test.

    Parameters
    ----------
    name : str or path
        ``"moons"`` (``make_moons(1000, noise=0.2, random_state=0)``, standardised, the seed
        notebook's data), ``"digits"`` (sklearn's 8x8 digits / 16, stratified split),
        ``"synthetic_mnist"`` (60,000 + 10,000 MNIST-shaped 1x28x28 images made from the digits,
        see :func:`bnn_ppl.synthetic.synthetic_mnist`; ``test_size`` does not apply), or a CSV
        file with a header row.
    random_seed : int
        Seed of the train/test split (moons also fixes its noise at ``random_state=0``).
    target : str, optional
        CSV column holding the targets; default the last column.
    task : {"auto", "classification", "regression"}
        For CSV files: ``"auto"`` treats non-numeric targets, or integer targets with at most
        20 distinct values, as class labels.
    test_size : float
        Fraction of rows held out.

    Returns
    -------
    Dataset

    Examples
    --------
    >>> data = load_dataset("moons")
    >>> data.X_train.shape, data.class_names
    ((500, 2), ['0', '1'])
    """
    if task not in _TASKS:
        raise DataError(f"The 'task' parameter must be one of {list(_TASKS)}. Got {task!r} instead.")
    if isinstance(test_size, bool) or not (isinstance(test_size, numbers.Real) and 0.0 < test_size < 1.0):
        raise DataError(f"The 'test_size' parameter must be a fraction between 0 and 1. Got {test_size!r} instead.")
    if name == "moons":
        X, y = make_moons(1000, noise=0.2, random_state=0)
        X_tr, X_te, y_tr, y_te = shuffle_split(_standardise(X), y, test_size=test_size, random_state=random_seed)
        return Dataset("moons", X_tr, X_te, y_tr, y_te, ["x0", "x1"], ["0", "1"])
    if name == "digits":
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        X, y = load_digits(return_X_y=True)
        X_tr, X_te, y_tr, y_te = train_test_split(
            X / 16.0, y, test_size=test_size, random_state=random_seed, stratify=y
        )
        features = [f"pixel_{i // 8}_{i % 8}" for i in range(64)]
        return Dataset("digits", X_tr, X_te, y_tr, y_te, features, [str(k) for k in range(10)])
    if name == "synthetic_mnist":
        from bnn_ppl.synthetic import synthetic_mnist

        X_tr, X_te, y_tr, y_te = synthetic_mnist(random_seed=random_seed)
        return Dataset("synthetic_mnist", X_tr, X_te, y_tr, y_te, None, [str(k) for k in range(10)])
    path = Path(name)
    if path.suffix.lower() != ".csv":
        raise DataError(f"Unknown data set {str(name)!r}: use one of {list(DATASETS)} or a path to a .csv file.")
    header, columns = read_csv(path)
    target = header[-1] if target is None else target
    if target not in header:
        raise DataError(f"{path} has no column {target!r} for the target; its columns are {header}.")
    features = [h for h in header if h != target]
    if not features:
        raise DataError(f"{path} has only the target column {target!r}; it needs feature columns too.")
    X = numeric_columns(path, header, columns, features)
    y, class_names = _targets(columns[header.index(target)], task, path, target)
    if class_names is not None and np.bincount(y).min() >= 2:
        from sklearn.model_selection import train_test_split

        X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=test_size, random_state=random_seed, stratify=y)
    else:
        X_tr, X_te, y_tr, y_te = shuffle_split(X, y, test_size=test_size, random_state=random_seed)
    return Dataset(str(path), X_tr, X_te, y_tr, y_te, features, class_names, target)


def make_moons(n_samples: int = 1000, *, noise: float = 0.2, random_state: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaving half circles: ``sklearn.datasets.make_moons``'s arrays, without importing scikit-learn.

    Importing scikit-learn imports ``scipy.stats`` (1.2-1.7 s on a 2-core machine); the embedded
    moons are made with NumPy alone, draw for draw as scikit-learn makes them (a test compares).

    Examples
    --------
    >>> X, y = make_moons(6, noise=0.0, random_state=0)
    >>> X.shape, sorted(y.tolist())
    ((6, 2), [0, 0, 0, 1, 1, 1])
    """
    n_out = n_samples // 2
    n_in = n_samples - n_out
    rng = np.random.RandomState(random_state)
    outer, inner = np.linspace(0, np.pi, n_out), np.linspace(0, np.pi, n_in)
    X = np.vstack([np.append(np.cos(outer), 1 - np.cos(inner)), np.append(np.sin(outer), 1 - np.sin(inner) - 0.5)]).T
    y = np.hstack([np.zeros(n_out, dtype=np.intp), np.ones(n_in, dtype=np.intp)])
    order = np.arange(n_samples)
    rng.shuffle(order)
    X, y = X[order], y[order]
    return X + rng.normal(scale=noise, size=X.shape), y


def shuffle_split(X: np.ndarray, y: np.ndarray, *, test_size: float, random_state: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``X_train, X_test, y_train, y_test`` as ``sklearn.model_selection.train_test_split`` (unstratified) gives them.

    The same permutation (``RandomState(random_state).permutation``, the first
    ``ceil(test_size * rows)`` rows held out), without importing scikit-learn.
    """
    n_test = math.ceil(test_size * len(X))
    if not 0 < n_test < len(X):
        raise DataError(f"test_size={test_size} of {len(X)} rows leaves no train or no test rows; "
                        "use more rows or a test_size nearer 0.5.")
    order = np.random.RandomState(random_state).permutation(len(X))
    test, train = order[:n_test], order[n_test:]
    return X[train], X[test], y[train], y[test]


def _standardise(X: np.ndarray) -> np.ndarray:
    """Columns centred and scaled to unit variance (``sklearn.preprocessing.scale``'s arithmetic)."""
    std = X.std(axis=0)
    return (X - X.mean(axis=0)) / np.where(std == 0.0, 1.0, std)


def read_csv(path: str | os.PathLike) -> tuple[list[str], list[list[str]]]:
    """Read a CSV file with a header row into (column names, columns of strings)."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:  # Excel's "CSV UTF-8" starts with a BOM
            rows = list(csv.reader(fh))
    except FileNotFoundError:
        raise DataError(f"No CSV file at {str(path)!r}.") from None
    except (UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"{path} is not a readable UTF-8 CSV file: {err}") from None
    rows = [row for row in rows if row]
    if len(rows) < 2:
        raise DataError(f"{path} needs a header row and at least one data row.")
    header = [h.strip() for h in rows[0]]
    if len(set(header)) != len(header):
        raise DataError(f"{path} has duplicate column names in its header {header}.")
    for i, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise DataError(f"{path} line {i} has {len(row)} fields but the header has {len(header)}.")
    return header, [list(col) for col in zip(*rows[1:], strict=True)]


def numeric_columns(path: str | os.PathLike, header: list[str], columns: list[list[str]],
                    names: list[str]) -> np.ndarray:
    """Columns ``names`` as a float matrix, naming the first value that is not a number."""
    missing = [n for n in names if n not in header]
    if missing:
        raise DataError(f"{path} lacks the feature column(s) {missing}; its columns are {header}.")
    return np.column_stack([_floats(Path(path), n, columns[header.index(n)]) for n in names])


def _floats(path: Path, name: str, values: list[str]) -> np.ndarray:
    try:
        out = np.array([float(v) for v in values])
    except ValueError:
        bad = next(v for v in values if not is_number(v))
        raise DataError(
            f"{path}: column {name!r} must be numeric to be a feature. Got {bad!r}; encode it or drop the column."
        ) from None
    _check_finite(out, values, path, name, "column")
    return out


def _check_finite(numbers: np.ndarray, values: list[str], path: Path, name: str, what: str) -> None:
    """Refuse NaN and infinite cells, naming the CSV line (line 1 is the header)."""
    bad = np.flatnonzero(~np.isfinite(numbers))
    if bad.size:
        raise DataError(f"{path}: the {what} {name!r} holds {values[bad[0]]!r} on line {bad[0] + 2}"
                        f"{f' (and {bad.size - 1} more line(s))' if bad.size > 1 else ''}; fill in a number or drop "
                        "the row.")


def is_number(text: str) -> bool:
    """Whether ``text`` (a CSV cell) parses as a float."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def _targets(values: list[str], task: str, path: Path, name: str) -> tuple[np.ndarray, list[str] | None]:
    _check_no_blank_targets(values, path, name)
    numeric = all(is_number(v) for v in values)
    if numeric:
        _check_finite(np.array([float(v) for v in values]), values, path, name, "target column")
    if task == "regression" or (task == "auto" and numeric and not _few_integers(values)):
        if not numeric:
            raise DataError(f"{path}: target column {name!r} must be numeric for regression.")
        return np.array([float(v) for v in values]), None
    if numeric and _all_integers(values):
        labels = np.array([int(float(v)) for v in values])
        classes, y = np.unique(labels, return_inverse=True)
        return y.astype(np.int64), [str(c) for c in classes]
    if numeric:  # compared as numbers: "1" and "1.0" are one class (as strings they were two)
        classes, y = np.unique(np.array([float(v) for v in values]), return_inverse=True)
        return y.astype(np.int64), [str(int(c)) if c == round(c) else repr(float(c)) for c in classes]
    classes, y = np.unique(np.array([v.strip() for v in values]), return_inverse=True)
    return y.astype(np.int64), [str(c) for c in classes]


def _check_no_blank_targets(values: list[str], path: Path, name: str) -> None:
    """Refuse empty target cells, which would otherwise become a class of their own (line 1 is the header)."""
    blank = [i + 2 for i, v in enumerate(values) if not v.strip()]
    if blank:
        raise DataError(
            f"{path}: the target column {name!r} is empty on line {blank[0]}"
            f"{f' (and {len(blank) - 1} more line(s))' if len(blank) > 1 else ''}; fill in the target or "
            "drop the row."
        )


def _all_integers(values: list[str]) -> bool:
    return all(float(v) == round(float(v)) for v in values)


def _few_integers(values: list[str]) -> bool:
    return _all_integers(values) and len(set(float(v) for v in values)) <= _MAX_AUTO_CLASSES


#: Rows generated from one seed by :func:`write_large_synthetic` (files do not depend on block sizes).
_SYNTHETIC_BLOCK_ROWS = 16_384


def write_large_synthetic(directory: str | os.PathLike, rows: int, features: int = 784, classes: int = 10, *,
                          random_seed: int = 0, dtype: str = "float32") -> tuple[np.ndarray, np.ndarray]:
    """Write a classification set of any size as ``X.npy`` and ``y.npy`` in ``directory``, with bounded memory.

    ``X`` is standard normal; ``y`` is the argmax of a fixed random linear map of ``X`` plus
    noise (a learnable problem, about 90% accuracy for a linear model). Rows come in blocks
    of 16,384 each seeded from ``random_seed`` and the block number, so a file's rows do not
    depend on how it was written. Each file appears complete or not at all.

    Returns
    -------
    X, y : numpy.memmap
        The files opened with ``np.load(..., mmap_mode="r")`` (pass them to ``build_model``
        with a ``batch_size`` to stream them).

    Examples
    --------
    >>> import tempfile
    >>> X, y = write_large_synthetic(tempfile.mkdtemp(), rows=1000, features=8, classes=3)
    >>> X.shape, X.dtype.name, int(y.max())
    ((1000, 8), 'float32', 2)
    """
    from bnn_ppl.compile.streamed import write_npy_rows

    where = Path(directory)
    if not where.is_dir():
        raise DataError(f"{where} is not a directory; create it first (write_large_synthetic writes X.npy and y.npy in it).")
    for name, value, low in (("rows", rows, 1), ("features", features, 1), ("classes", classes, 2)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise DataError(f"The {name!r} parameter of write_large_synthetic must be an integer >= {low}. Got {value!r}.")
    teacher = np.random.default_rng([random_seed, 0]).normal(size=(features, classes)) / np.sqrt(features)

    def block(b: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng([random_seed, 1, b])
        n = min(_SYNTHETIC_BLOCK_ROWS, rows - b * _SYNTHETIC_BLOCK_ROWS)
        X = rng.standard_normal((n, features))
        return X.astype(dtype), np.argmax(X @ teacher + 0.3 * rng.standard_normal((n, classes)), axis=1)

    def rows_of(start: int, stop: int, part: int) -> np.ndarray:
        first, last = start // _SYNTHETIC_BLOCK_ROWS, (stop - 1) // _SYNTHETIC_BLOCK_ROWS
        out = np.concatenate([block(b)[part] for b in range(first, last + 1)])
        offset = first * _SYNTHETIC_BLOCK_ROWS
        return out[start - offset:stop - offset]

    X = write_npy_rows(where / "X.npy", (int(rows), int(features)), dtype, lambda a, b: rows_of(a, b, 0),
                       block_rows=_SYNTHETIC_BLOCK_ROWS)
    y = write_npy_rows(where / "y.npy", (int(rows),), "int64", lambda a, b: rows_of(a, b, 1),
                       block_rows=_SYNTHETIC_BLOCK_ROWS)
    return X, y

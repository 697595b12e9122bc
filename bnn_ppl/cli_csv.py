"""The command line's CSV data: checks, the standardisation ``bnn-ppl fit`` applies (features, and a
regression's target), the metadata it saves with the model, and the columns ``predict`` reads.

The standardisation happens outside the model (a model file needs standardised rows in Python;
:func:`bnn_ppl.load` warns so); ``metadata["cli"]["standardise"]`` holds ``mean``/``scale`` per
feature and, for a regression, ``y_mean``/``y_scale``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from bnn_ppl.datasets import is_number
from bnn_ppl.errors import DataError, ModelFileError

__all__ = ["checked_and_standardised", "checked_cli_meta", "feature_columns", "in_target_units", "location_scale"]


def checked_and_standardised(data: Any, spec: Any, name: str) -> tuple[Any, dict]:
    """A CSV data set checked against ``spec``, its features (and a regression's target) standardised
    on the training rows; returns it with the ``scaling`` to save."""
    header = [*map(str, data.feature_names or []), str(data.target)]
    if all(is_number(h) for h in header):  # the first row became the column names, and was not fitted
        raise DataError(f"{name}: the first line {header[:5]} holds numbers only: it seems to have no header row. "
                        "Add a header line naming the columns (the target's is given to --target).")
    if data.class_names is not None:
        needed = 2 if spec.likelihood.n_outputs == 1 else spec.likelihood.n_outputs
        if len(data.class_names) != needed:
            raise DataError(f"{name}: the target column {data.target!r} has {len(data.class_names)} distinct value(s) "
                            f"{data.class_names[:10]} in the training rows, but the spec's "
                            f"{type(spec.likelihood).__name__} likelihood has {needed} classes; choose another --target "
                            "or a spec with that many classes.")
    mean, scale = location_scale(data.X_train)
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(scale))):
        bad = [data.feature_names[i] for i in np.flatnonzero(~(np.isfinite(mean) & np.isfinite(scale)))]
        raise DataError(f"{name}: column(s) {bad[:10]} hold values too large to standardise; rescale them first.")
    scaling = {"mean": mean.tolist(), "scale": scale.tolist()}
    y_train, y_test = data.y_train, data.y_test
    if not spec.likelihood.is_classifier:  # a regression target too (weight and noise priors are unit-scale)
        y_mean, y_scale = location_scale(np.asarray(y_train, dtype=float)[:, None])
        if not (np.isfinite(y_mean[0]) and np.isfinite(y_scale[0])):
            raise DataError(f"{name}: the target column {data.target!r} holds values too large to standardise; "
                            "rescale it first.")
        scaling.update(y_mean=float(y_mean[0]), y_scale=float(y_scale[0]))
        y_train, y_test = (y_train - y_mean[0]) / y_scale[0], (y_test - y_mean[0]) / y_scale[0]
    standardised = type(data)(data.name, (data.X_train - mean) / scale, (data.X_test - mean) / scale,
                              y_train, y_test, data.feature_names, data.class_names, data.target)
    return standardised, scaling


def location_scale(values: Any) -> tuple[Any, Any]:
    """Column means and standard deviations (1 for a constant column), without overflow for huge values."""
    with np.errstate(over="ignore", invalid="ignore"):
        big = np.max(np.abs(values), axis=0)  # scaled first: squares of 1e200 overflow
        big[big == 0] = 1.0
        mean = values.mean(axis=0)
        scale = (values / big).std(axis=0) * big
    scale[scale == 0] = 1.0
    return mean, scale


def in_target_units(s: Any, scaling: dict | None) -> Any:
    """A regression's uncertainty summary in the units of the target ``fit`` standardised (as it is otherwise)."""
    if not scaling or "y_scale" not in scaling or not hasattr(s, "epistemic_var"):
        return s
    from bnn_ppl.predictive import RegressionUncertainty

    v = scaling["y_scale"] ** 2
    return RegressionUncertainty(s.mean * scaling["y_scale"] + scaling["y_mean"], s.epistemic_var * v,
                                 s.aleatoric_var * v, s.total_var * v)


def feature_columns(header: list[str], meta: dict, spec: Any, stored: list) -> list[str]:
    """The CSV columns to read, by the model's feature names; by position only for a model whose
    features have no names (images, arrays without column names)."""
    named = meta.get("feature_columns") or (stored if stored and all(isinstance(n, str) for n in stored) else None)
    width = math.prod(spec.input_shape)
    if header and all(is_number(h) for h in header) and not (named and set(map(str, named)) <= set(header)):
        # (a header of the model's own numeric names, e.g. years, is a header)
        raise DataError(f"The CSV's first line {header[:5]}... holds numbers: it seems to have no header row. Add a "
                        "header with the model's feature names (bnn-ppl predict MODEL --columns lists them).")
    if named:
        missing = [name for name in named if name not in header]
        if missing:
            raise DataError(f"The CSV lacks the model's feature column(s) {missing[:10]}; its columns are {header}. "
                            "bnn-ppl predict MODEL --columns lists the columns the model needs.")
        return [str(name) for name in named]
    candidates = [h for h in header if h != meta.get("target")]
    if len(candidates) == width:
        return candidates
    raise DataError(f"The CSV needs the model's {width} feature columns (in order); its columns are {header}.")


def checked_cli_meta(cli_meta: Any, result: Any, where: str) -> dict:
    """The ``cli`` metadata ``fit`` saved (feature columns, standardisation, class names), checked
    against the model: an edited file is a ModelFileError, not a wrong prediction."""
    width = math.prod(result.spec.input_shape)

    def names(value: Any) -> bool:
        return value is None or (isinstance(value, list) and all(isinstance(v, str) for v in value))

    def numbers(value: Any) -> bool:
        return (isinstance(value, list) and len(value) == width
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value))

    scaling = cli_meta.get("standardise") if isinstance(cli_meta, dict) else None
    ok = (isinstance(cli_meta, dict) and names(cli_meta.get("feature_columns")) and names(cli_meta.get("class_names"))
          and (cli_meta.get("feature_columns") is None or len(cli_meta["feature_columns"]) == width)
          and (scaling is None or (isinstance(scaling, dict) and numbers(scaling.get("mean"))
                                   and numbers(scaling.get("scale")) and all(v > 0 for v in scaling["scale"])
                                   and _target_scaling_ok(scaling, result.spec.likelihood.is_classifier))))
    if not ok:
        raise ModelFileError(f"{where}: the command line's metadata (feature columns, standardisation, class names) "
                             "is damaged or does not fit the model; the file was edited.")
    return cli_meta


def _target_scaling_ok(scaling: dict, classifier: bool) -> bool:
    """A regression's ``y_mean``/``y_scale`` are finite numbers (scale > 0); a classifier has neither."""
    keys = {"y_mean", "y_scale"} & set(scaling)
    if classifier or not keys:
        return not keys  # files of earlier versions fitted a regression on the raw target: no entry
    values = [scaling.get("y_mean"), scaling.get("y_scale")]
    return (all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values)
            and values[1] > 0)

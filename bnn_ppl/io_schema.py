"""What a model file's ``fit.json`` may hold: one check per field, with what it must be.

Written by :func:`bnn_ppl.io.to_bytes`; :func:`check_fit_info` refuses a missing, unknown or
wrong-typed field with a :class:`~bnn_ppl.ModelFileError` naming it (an edited or damaged file).
"""

from __future__ import annotations

import math
import reprlib
from collections.abc import Callable
from typing import Any

from bnn_ppl.errors import ModelFileError
from bnn_ppl.inference.families import FAMILIES
from bnn_ppl.inference.estimator import GRADIENTS, KL_CHOICES
from bnn_ppl.inference.result import STOP_REASONS

__all__ = ["FIT_SCHEMA", "FIT_DEFAULTS", "check_fit_info"]


def _is_int(value: Any, low: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_names(value: Any) -> bool:
    return value is None or (
        isinstance(value, list) and all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in value)
    )


def _is_ordering(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str)
        and isinstance(entry[1], list) and all(_is_int(n, 0) for n in entry[1])
        for entry in value
    )


#: Every field of fit.json (see :func:`to_bytes`): field -> (check, what it must be).
FIT_SCHEMA: dict[str, tuple[Callable[[Any], bool], str]] = {
    "method": (lambda v: isinstance(v, str) and v in FAMILIES, f"one of {FAMILIES.names()} (a variational family)"),
    "family_options": (lambda v: isinstance(v, dict) and all(isinstance(k, str) for k in v),
                       "an object of the family's settings (e.g. {\"rank\": 8})"),
    "members": (lambda v: _is_int(v, 1), "a positive integer (ensemble members)"),
    "member_seeds": (lambda v: isinstance(v, list) and all(_is_int(s, 0) for s in v), "a list of seeds"),
    "mc_draws": (lambda v: _is_int(v, 1), "a positive integer"),
    "elbo": (lambda v: isinstance(v, dict) and v.get("kl", "mc") in KL_CHOICES
             and v.get("gradient", "reparameterization") in GRADIENTS and set(v) <= {"kl", "gradient", "kl_weight", "local_reparameterization"}
             and _is_number(v.get("kl_weight", 1.0)) and math.isfinite(v.get("kl_weight", 1.0))
             and v.get("kl_weight", 1.0) > 0 and isinstance(v.get("local_reparameterization", False), bool),
             f"an object with 'kl' (one of {list(KL_CHOICES)}), 'gradient' (one of {list(GRADIENTS)}), "
             "'kl_weight' (a number > 0) and 'local_reparameterization' (true or false)"),
    "engine": (lambda v: isinstance(v, str), "an engine name (a string)"),
    "backend": (lambda v: v is None or isinstance(v, str), "a backend name (a string) or null"),
    "learning_rate": (lambda v: _is_number(v) and math.isfinite(v) and v > 0, "a positive number"),
    "lr_floor": (lambda v: _is_number(v) and 0 < v <= 1, "a number in (0, 1]"),
    "n_steps": (lambda v: _is_int(v, 0), "a non-negative integer"),
    "random_seed": (lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool)), "an integer or null"),
    "timings": (lambda v: isinstance(v, dict) and all(_is_number(t) for t in v.values()),
                "an object of numbers (seconds and steps/s)"),
    "interrupted": (lambda v: isinstance(v, bool), "true or false"),
    "stop_reason": (lambda v: v in STOP_REASONS, f"one of {list(STOP_REASONS)} (bnn_ppl.inference.result.STOP_REASONS)"),
    "n_obs": (lambda v: _is_int(v, 1), "a positive integer (the training rows)"),
    "batch_size": (lambda v: v is None or _is_int(v, 1), "a positive integer or null"),
    "feature_names": (_is_names, "a list of strings or integers, or null"),
    "class_names": (_is_names, "a list of strings or integers, or null"),
    "ordering": (_is_ordering, "a list of [name, shape] pairs"),
    "data_included": (lambda v: isinstance(v, bool), "true or false"),
    "prior_scale": (lambda v: v is None or (_is_number(v) and math.isfinite(v) and v > 0),
                    "a positive number (build_model's prior_scale) or null"),
}
#: Fields older files may lack, with the value they imply.
FIT_DEFAULTS = {"lr_floor": 1.0, "stop_reason": "completed", "family_options": {}, "members": 1,
                "member_seeds": [], "mc_draws": 1, "elbo": {}, "prior_scale": None}


def check_fit_info(where: str, data: dict[str, Any]) -> dict[str, Any]:
    """The parsed fit.json ``data``, every field checked against ``FIT_SCHEMA`` (defaults filled in)."""
    info = {**FIT_DEFAULTS, **data}
    unknown = sorted(set(info) - set(FIT_SCHEMA))
    if unknown:
        raise ModelFileError(
            f"{where}: fit.json has unknown field(s) {unknown}; the file was edited or written by a newer "
            "bnn_ppl. Upgrade bnn_ppl or save the model again."
        )
    for field, (check, expected) in FIT_SCHEMA.items():
        if field not in info:
            raise ModelFileError(
                f"{where}: fit.json lacks the field {field!r} ({expected}); the file is incomplete or was "
                "edited. Save the model again."
            )
        if not check(info[field]):
            raise ModelFileError(
                f"{where}: the field {field!r} of fit.json must be {expected}. Got {reprlib.repr(info[field])} "
                "instead; the file was edited or is corrupted. Save the model again."
            )
    return info

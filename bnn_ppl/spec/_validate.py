"""Small validators shared by the spec dataclasses; each error names the field and the fix."""

from __future__ import annotations

import math
import numbers
from typing import Any

from bnn_ppl.errors import SpecError


def _describe(owner: str, field: str) -> str:
    return f"The {field!r} parameter of {owner}"


def real_number(value: Any) -> float | None:
    """``value`` as a float when it is a real number (Python, numpy scalar or 0-d array), else None.

    Booleans are not numbers here (``Normal(True)`` is a mistake, not ``Normal(1.0)``).
    """
    if getattr(value, "ndim", None) == 0 and hasattr(value, "item"):  # np.float32(0.5), np.array(1.0)
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    return float(value)


def positive_float(owner: str, field: str, value: Any) -> float:
    """Return ``value`` as a float, raising :class:`SpecError` unless finite and > 0."""
    number = real_number(value)
    if number is None or not math.isfinite(number) or number <= 0:
        raise SpecError(f"{_describe(owner, field)} must be a positive number. Got {value!r} instead.")
    return number


def finite_float(owner: str, field: str, value: Any) -> float:
    """Return ``value`` as a float, raising :class:`SpecError` unless finite."""
    number = real_number(value)
    if number is None or not math.isfinite(number):
        raise SpecError(f"{_describe(owner, field)} must be a finite number. Got {value!r} instead.")
    return number


def open_unit_float(owner: str, field: str, value: Any) -> float:
    """Return ``value`` as a float in the open interval (0, 1)."""
    value = finite_float(owner, field, value)
    if not 0.0 < value < 1.0:
        raise SpecError(f"{_describe(owner, field)} must lie strictly between 0 and 1. Got {value!r} instead.")
    return value


def positive_int(owner: str, field: str, value: Any, minimum: int = 1) -> int:
    """Return ``value`` as an int >= ``minimum`` (numpy integers too, never bools)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise SpecError(
            f"{_describe(owner, field)} must be an integer >= {minimum}. Got {value!r} instead."
        )
    return int(value)


def boolean(owner: str, field: str, value: Any) -> bool:
    """Return ``value`` if it is a bool (TOML ``true``/``false``)."""
    if not isinstance(value, bool):
        raise SpecError(f"{_describe(owner, field)} must be true or false. Got {value!r} instead.")
    return value


def choice(owner: str, field: str, value: Any, choices: list[str]) -> str:
    """Return ``value`` if it is one of ``choices``."""
    if value not in choices:
        raise SpecError(f"{_describe(owner, field)} must be one of {sorted(choices)}. Got {value!r} instead.")
    return value


def optional_prior(owner: str, field: str, value: Any) -> None:
    """Refuse anything but a spec Prior or None."""
    from bnn_ppl.spec.priors import Prior

    if value is not None and not isinstance(value, Prior):
        raise SpecError(
            f"The {field!r} parameter of {owner} must be a Prior such as Normal(1.0) or None. Got {value!r} instead."
        )


def int_pair(owner: str, field: str, value: Any, minimum: int = 1) -> tuple[int, int]:
    """An int or a pair of ints (kernel sizes, strides), each >= ``minimum``, as a pair."""
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise SpecError(f"{_describe(owner, field)} must be an integer or a pair of integers. Got {value!r} instead.")
        return (positive_int(owner, field, value[0], minimum), positive_int(owner, field, value[1], minimum))
    n = positive_int(owner, field, value, minimum)
    return (n, n)


def int_tuple(owner: str, field: str, value: Any) -> tuple[int, ...]:
    """A non-empty tuple of positive ints (shapes)."""
    if not isinstance(value, (list, tuple)) or not value:
        raise SpecError(f"{_describe(owner, field)} must be a non-empty list of positive integers. Got {value!r} instead.")
    return tuple(positive_int(owner, field, item) for item in value)

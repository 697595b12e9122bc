"""``random_seed``: the one argument every random path takes, checked before anything runs."""

from __future__ import annotations

from typing import Any

import numpy as np

from bnn_ppl.errors import ParameterError

__all__ = ["check_seed"]


def check_seed(seed: Any, caller: str, *, name: str = "random_seed", generator: bool = False) -> Any:
    """``seed`` as a non-negative ``int`` (or None); with ``generator``, a ``np.random.Generator`` passes too.

    Raises
    ------
    ParameterError
        For anything else (negative numbers, floats, booleans, strings), naming ``caller``.

    Examples
    --------
    >>> check_seed(np.int64(3), "fit"), check_seed(None, "fit")
    (3, None)
    >>> check_seed(-1, "fit")
    Traceback (most recent call last):
    ...
    bnn_ppl.errors.ParameterError: The 'random_seed' parameter of fit must be a non-negative integer or None, such as 0. Got -1 instead.
    """
    if seed is None or (generator and isinstance(seed, np.random.Generator)):
        return seed
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, (bool, np.bool_)) and seed >= 0:
        return int(seed)
    also = ", a numpy Generator" if generator else ""
    raise ParameterError(f"The {name!r} parameter of {caller} must be a non-negative integer{also} or None, such as "
                         f"0. Got {seed!r} instead.")

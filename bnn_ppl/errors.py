"""Exception hierarchy: every error subclasses :class:`BnnPplError` and a matching builtin."""

from __future__ import annotations

__all__ = ["BnnPplError", "SpecError", "DataError", "ParameterError", "FitError", "ModelFileError"]


class BnnPplError(Exception):
    """Base class of every error raised by bnn_ppl."""


class SpecError(BnnPplError, ValueError):
    """A network specification (Python object, TOML or JSON) is invalid."""


class DataError(BnnPplError, ValueError):
    """Training or prediction data do not fit the specification."""


class ParameterError(BnnPplError, ValueError):
    """An argument that is neither spec nor data is invalid (``n``, ``method``, ``draws``, ``kind``, ...)."""


class FitError(BnnPplError, RuntimeError):
    """Fitting failed (for example the loss became NaN)."""


class ModelFileError(BnnPplError, ValueError):
    """A saved model file is truncated, corrupted, tampered with or from a newer schema."""

"""Spec + data -> ``pm.Model``: the only place that builds PyMC graphs."""

from bnn_ppl.compile.model import BuiltModel, build_model

__all__ = ["BuiltModel", "build_model"]

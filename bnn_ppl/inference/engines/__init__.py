"""ADVI engines: each runs the optimisation and writes into the PyMC approximation's parameters."""

from bnn_ppl.inference.engines.base import ENGINES, Engine, FitRequest, resolve_engine

__all__ = ["ENGINES", "Engine", "FitRequest", "resolve_engine"]

"""Benchmarks of bnn_ppl against ``pm.fit`` and NumPyro, measured in one process and one run.

Run ``python -m bench.run`` (``--quick`` for a smoke run); see :mod:`bench.run`. This package
imports nothing heavy at import time so that ``python -m bench.ttfr`` can time imports.
"""

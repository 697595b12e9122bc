"""Narrow networks on CPU: the JAX engine runs the forward pass with the batch stored features first.

PyMC's graph stores a batch rows first, ``(rows, units)``. For a network whose layers are a
few units wide (the seed notebook's 2-5-5-1 moons net), XLA on a CPU then vectorises every
activation, bias and gradient row sum along an axis of 5 values, shorter than one vector
register. Stored features first, ``(units, rows)``, the rows become that axis. The likelihood's
value and gradient of nets up to 16 wide on 500 rows took 1.2-3x less time this way
(``bench/LAST_RUN.md``, Session 9; 2-5-5-1: 2.7x at float32, 1.5x at float64; 8-16-1 on 2,000
rows: 1.6x / 1.0x), while wider layers or small batches gained nothing or lost (20-50-50-1: equal;
784-256-10 at batch 256: 1.26x slower; 16-64-3 at batch 64: 1.3x slower), hence
:data:`NARROW_UNITS` and :data:`MIN_ROWS`.

Only the network's forward pass changes: each layer's own ``forward_features_first``
(:meth:`bnn_ppl.spec.layers.Layer.forward_features_first`) on the parameter tensors PyMC's
graph makes of the flat vector, and the likelihood's term of every row is PyMC's graph of that
output (:attr:`~bnn_ppl.inference.engines.objective.FlatLogp.rows_given_output`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from bnn_ppl.compile import BuiltModel
from bnn_ppl.inference.engines.objective import FlatLogp

__all__ = ["NARROW_UNITS", "MIN_ROWS", "could_run_features_first", "runs_features_first", "features_first_logp"]

#: The widest layer (units, or input features) of a network run features first.
NARROW_UNITS = 16
#: The fewest rows per step (the batch) for which features first is chosen.
MIN_ROWS = 128


def could_run_features_first(built: BuiltModel, backend: str, mesh: Any = None) -> bool:
    """Whether ``built`` is a network the JAX engine runs features first (see the module notes).

    True for a CPU fit without a device mesh, on data held in memory, of a network whose layers
    all implement ``forward_features_first``, at most :data:`NARROW_UNITS` wide, on batches of
    at least :data:`MIN_ROWS` rows.
    """
    layers = built.layers
    if not all(layer.layer.features_first and len(layer.in_shape) == 1 for layer in layers):
        return False
    widest = max(max(layer.in_shape[0], layer.out_shape[0]) for layer in layers)
    rows = built.batch_size or np.shape(built.X_data.get_value())[0]
    return (backend == "cpu" and mesh is None and built.source is None
            and widest <= NARROW_UNITS and rows >= MIN_ROWS)


def runs_features_first(built: BuiltModel, flat: FlatLogp, backend: str, mesh: Any = None) -> bool:
    """:func:`could_run_features_first`, and PyMC's graph gives the likelihood in terms of the network's output."""
    return could_run_features_first(built, backend, mesh) and flat.rows_given_output is not None


def features_first_logp(built: BuiltModel, flat: FlatLogp, jaxify: Callable) -> Callable:
    """``logp_fn(theta, X_batch, y_batch, prior_scale) -> (rest_other, rows)`` with the forward pass features first.

    ``jaxify(inputs=..., outputs=...)`` turns PyTensor graphs into a JAX function (PyMC's
    ``get_jaxified_graph``). The result equals the engine's PyMC-graph function up to rounding.
    """
    from bnn_ppl.array_ops import jax_ops

    xp = jax_ops()
    keys = [(layer.name, key) for layer in built.layers for key in flat.layer_params[layer.name]]
    params_fn = jaxify(inputs=[flat.theta, flat.prior_scale],
                       outputs=[flat.layer_params[name][key] for name, key in keys])
    rest_fn = jaxify(inputs=[flat.theta, flat.prior_scale], outputs=[flat.rest_other])
    # the batch's X stays an input: the observed variable's size may be read off its rows
    rows_fn = jaxify(inputs=[flat.theta, flat.output_in, flat.x, flat.y, flat.prior_scale],
                     outputs=[flat.rows_given_output])

    def logp_fn(theta, xb, yb, prior_scale):
        values = params_fn(theta, prior_scale)
        params: dict[str, dict[str, Any]] = {layer.name: {} for layer in built.layers}
        for (name, key), value in zip(keys, values, strict=True):
            params[name][key] = value
        h = xb.T  # (features, rows)
        for layer in built.layers:
            h = layer.layer.forward_features_first(xp, params[layer.name], h, layer.in_shape)
        (rest,) = rest_fn(theta, prior_scale)
        (rows,) = rows_fn(theta, h.T, xb, yb, prior_scale)
        return rest, rows

    return logp_fn

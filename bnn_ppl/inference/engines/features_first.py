"""Dense networks on CPU: the JAX engine runs the forward pass with the batch stored features first.

PyMC's graph stores a batch rows first, ``(rows, units)``. XLA on a CPU vectorises along the
last axis: for a layer a few units wide (the seed notebook's 2-5-5-1 moons net) that axis is
shorter than one vector register. Stored features first, ``(units, rows)``, the rows become that
axis. The batch is transposed into a new array (``optimization_barrier``; for a full batch XLA
hoists it out of the loop, a minibatch pays one copy per step): left as a transpose, XLA folds
it into the first layer's products, whose weight gradient then contracts the batch's leading
axis, a slow form.

The likelihood's value and gradient, one thread, us per step, rows first / features first with
the transpose folded / features first as run here (``python -m bench.layout``, ``bench/LAST_RUN.md``,
Session 10): 2-5-5-1 on 500 rows 39.4 / 22.4 / 17.0 at float32, 49.6 / 28.2 / 26.7 at float64;
64-32-10 at batch 128 67.9 / 64.1 / 49.2 and 112.6 / 111.2 / 90.2; 100-100-1 on 1,000 rows
578 / 527 / 440; 2-8-1 at batch 64 4.7 / 4.6 / 3.6. Wide layers on small batches lose:
784-256-10 at batch 32 308 / 489 / 467, 64-256-256-10 at batch 32 407 / 506 / 490. With a step's
rows at least the widest layer's width, features first was equal or faster in every case but
10-128-128-1 at batch 256 at float64 (852 rows first, 973; 760 / 785 in an earlier run), hence
:data:`ROWS_PER_UNIT`.

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

__all__ = ["ROWS_PER_UNIT", "could_run_features_first", "runs_features_first", "features_first_logp",
           "rest_and_rows_fns"]

#: Features first when a step's rows (the batch) are at least this many times the widest layer's
#: width (its units, or the input features); ``math.inf`` turns the features-first pass off.
ROWS_PER_UNIT = 1.0


def could_run_features_first(built: BuiltModel, backend: str, mesh: Any = None) -> bool:
    """Whether ``built`` is a network the JAX engine runs features first (see the module notes).

    True for a CPU fit without a device mesh, on data held in memory, of a network whose layers
    all implement ``forward_features_first``, on batches of at least :data:`ROWS_PER_UNIT` times
    its widest layer's width (units or input features) rows.
    """
    layers = built.layers
    if not all(layer.layer.features_first and len(layer.in_shape) == 1 for layer in layers):
        return False
    widest = max(max(layer.in_shape[0], layer.out_shape[0]) for layer in layers)
    rows = built.batch_size or np.shape(built.X_data.get_value())[0]
    return (backend == "cpu" and mesh is None and built.source is None
            and rows >= ROWS_PER_UNIT * widest)


def runs_features_first(built: BuiltModel, flat: FlatLogp, backend: str, mesh: Any = None) -> bool:
    """:func:`could_run_features_first`, and PyMC's graph gives the likelihood in terms of the network's output."""
    return could_run_features_first(built, backend, mesh) and flat.rows_given_output is not None


def rest_and_rows_fns(flat: FlatLogp, jaxify: Callable) -> tuple[Callable, Callable]:
    """JAX functions ``rest(theta, prior_scale)`` and ``rows(theta, output, X_batch, y_batch, prior_scale)`` of PyMC's graph."""
    rest_fn = jaxify(inputs=[flat.theta, flat.prior_scale], outputs=[flat.rest_other])
    # the batch's X stays an input: the observed variable's size may be read off its rows
    rows_fn = jaxify(inputs=[flat.theta, flat.output_in, flat.x, flat.y, flat.prior_scale],
                     outputs=[flat.rows_given_output])
    return rest_fn, rows_fn


def features_first_logp(built: BuiltModel, flat: FlatLogp, jaxify: Callable) -> Callable:
    """``logp_fn(theta, X_batch, y_batch, prior_scale) -> (rest_other, rows)`` with the forward pass features first.

    ``jaxify(inputs=..., outputs=...)`` turns PyTensor graphs into a JAX function (PyMC's
    ``get_jaxified_graph``). The result equals the engine's PyMC-graph function up to rounding.
    """
    import jax

    from bnn_ppl.array_ops import jax_ops

    xp = jax_ops()
    keys = [(layer.name, key) for layer in built.layers for key in flat.layer_params[layer.name]]
    params_fn = jaxify(inputs=[flat.theta, flat.prior_scale],
                       outputs=[flat.layer_params[name][key] for name, key in keys])
    rest_fn, rows_fn = rest_and_rows_fns(flat, jaxify)

    def logp_fn(theta, xb, yb, prior_scale):
        values = params_fn(theta, prior_scale)
        params: dict[str, dict[str, Any]] = {layer.name: {} for layer in built.layers}
        for (name, key), value in zip(keys, values, strict=True):
            params[name][key] = value
        h = jax.lax.optimization_barrier(xb.T)  # (features, rows), a new array (see the module notes)
        for layer in built.layers:
            h = layer.layer.forward_features_first(xp, params[layer.name], h, layer.in_shape)
        (rest,) = rest_fn(theta, prior_scale)
        (rows,) = rows_fn(theta, h.T, xb, yb, prior_scale)
        return rest, rows

    return logp_fn

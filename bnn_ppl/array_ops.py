"""Array namespaces for the one forward definition of each layer: numpy, JAX and PyTensor.

Layer, activation and variational-family code (:mod:`bnn_ppl.spec.layers`,
:mod:`bnn_ppl.inference.families`) calls only the names listed in
``PRIMITIVES`` on the ``xp`` it is given; each namespace maps them to its library. The
libraries are imported when a namespace is first asked for.
"""

from __future__ import annotations

from functools import cache
from types import SimpleNamespace
from typing import Any

__all__ = ["PRIMITIVES", "numpy_ops", "jax_ops", "pytensor_ops", "pymc_jax_bridge"]

#: Every name a layer, activation or link may call on ``xp``.
PRIMITIVES = (
    "tanh", "exp", "expm1", "log", "sqrt", "erf", "sigmoid", "softplus", "softmax", "maximum", "minimum",
    "where", "matmul", "pad", "max", "mean", "moveaxis", "concatenate", "sum", "cholesky",
    "solve_lower", "stop_gradient", "segment_sum",
)


def _namespace(module: Any, **overrides: Any) -> SimpleNamespace:
    names = {name: getattr(module, name) for name in PRIMITIVES if name not in overrides}
    return SimpleNamespace(name=module.__name__, **names, **overrides)


@cache
def numpy_ops() -> SimpleNamespace:
    """numpy (+ scipy.special) primitives."""
    import numpy as np
    from scipy import linalg, special

    return _namespace(
        np,
        erf=special.erf,
        sigmoid=special.expit,
        softplus=lambda x: np.logaddexp(0, x),
        softmax=lambda x, axis=-1: special.softmax(x, axis=axis),
        max=lambda x, axis=None: np.max(x, axis=axis),
        cholesky=np.linalg.cholesky,
        solve_lower=lambda a, b: linalg.solve_triangular(a, b, lower=True),
        stop_gradient=lambda x: x,
        segment_sum=_numpy_segment_sum,
    )


def _numpy_segment_sum(x: Any, ids: Any, n: int) -> Any:
    """Sums of ``x`` (..., D) over the coordinates with each id in ``range(n)``: (..., n)."""
    import numpy as np

    moved = np.moveaxis(np.asarray(x), -1, 0)
    out = np.zeros((n, *moved.shape[1:]), dtype=moved.dtype)
    np.add.at(out, ids, moved)
    return np.moveaxis(out, 0, -1)


@cache
def jax_ops() -> SimpleNamespace:
    """``jax.numpy`` primitives."""
    import jax
    import jax.numpy as jnp

    return _namespace(
        jnp, erf=jax.scipy.special.erf, sigmoid=jax.nn.sigmoid, softplus=jax.nn.softplus, softmax=jax.nn.softmax,
        cholesky=jnp.linalg.cholesky,
        solve_lower=lambda a, b: jax.scipy.linalg.solve_triangular(a, b, lower=True),
        stop_gradient=jax.lax.stop_gradient,
        segment_sum=lambda x, ids, n: jnp.moveaxis(jax.ops.segment_sum(jnp.moveaxis(x, -1, 0), ids, n), 0, -1),
    )


@cache
def pytensor_ops() -> SimpleNamespace:
    """``pytensor.tensor`` primitives (graphs for PyMC, numba, C and the JAX linker)."""
    import pytensor.tensor as pt
    from pytensor.gradient import disconnected_grad
    from pytensor.tensor.special import softmax

    def segment_sum(x: Any, ids: Any, n: int) -> Any:
        moved = pt.moveaxis(x, -1, 0)
        out = pt.zeros((n, *(moved.shape[i] for i in range(1, moved.ndim))), dtype=x.dtype)
        return pt.moveaxis(pt.inc_subtensor(out[ids], moved), 0, -1)

    return _namespace(pt, softmax=lambda x, axis=-1: softmax(x, axis=axis), cholesky=pt.linalg.cholesky,
                      solve_lower=lambda a, b: pt.linalg.solve_triangular(a, b, lower=True),
                      stop_gradient=disconnected_grad, segment_sum=segment_sum)


def pymc_jax_bridge() -> Any:
    """``pymc.sampling.jax`` (``get_jaxified_graph``; x64 under floatX=float64), without its XLA_FLAGS edit.

    Importing that module prepends ``--xla_force_host_platform_device_count=100`` to the
    ``XLA_FLAGS`` environment variable (for ``pm.sample``'s JAX chains), so JAX, when it starts
    afterwards, splits the CPU into 100 host devices. Measured on this project's 2-core machine
    (float32, one thread): the 784-256-10 ADVI step ran at 183 steps/s with 100 devices and
    251-269 with one; NumPyro SVI on digits at 1,655 against 6,554. ``XLA_FLAGS`` is put back as
    it was, so a device count the user set stays theirs. (A process that later runs
    ``pm.sample(nuts_sampler="numpyro")`` draws its chains one after another on one CPU device.)
    """
    import os

    saved = os.environ.get("XLA_FLAGS")
    import pymc.sampling.jax as bridge

    if saved is None:
        os.environ.pop("XLA_FLAGS", None)
    else:
        os.environ["XLA_FLAGS"] = saved
    return bridge

"""Array namespaces for the one forward definition of each layer: numpy, JAX and PyTensor.

Layer, activation and variational-family code (:mod:`bnn_ppl.spec.layers`,
:mod:`bnn_ppl.inference.families`) calls only the names listed in
``PRIMITIVES`` on the ``xp`` it is given; each namespace maps them to its library. The
libraries are imported when a namespace is first asked for. A namespace may also offer a
native form of a layer's operation (``OPTIONAL``); the layer uses it when present and its own
definition in the primitives otherwise.
"""

from __future__ import annotations

import importlib.util
import sys
from functools import cache
from importlib import import_module
from types import ModuleType, SimpleNamespace
from typing import Any

__all__ = [
    "PRIMITIVES", "OPTIONAL", "numpy_ops", "jax_ops", "pytensor_ops", "jaxify", "jax_dispatch", "jax_x64_as_pytensor",
    "pymc_jax_bridge",
]

#: Every name a layer, activation or link may call on ``xp``.
PRIMITIVES = (
    "tanh", "exp", "expm1", "log", "sqrt", "erf", "sigmoid", "softplus", "softmax", "maximum", "minimum",
    "where", "matmul", "pad", "max", "mean", "moveaxis", "concatenate", "sum", "cholesky",
    "solve_lower", "stop_gradient", "segment_sum",
)
#: Native operations a namespace may add: ``conv2d(h, kernel, stride, pads)`` (JAX's
#: ``lax.conv_general_dilated``; elsewhere :class:`~bnn_ppl.spec.layers.Conv2D` uses patches).
OPTIONAL = ("conv2d",)


def _namespace(module: Any, **overrides: Any) -> SimpleNamespace:
    names = {name: getattr(module, name) for name in PRIMITIVES if name not in overrides}
    return SimpleNamespace(name=module.__name__, **names, **overrides)


@cache
def numpy_ops() -> SimpleNamespace:
    """numpy (+ scipy.special) primitives; SciPy is imported at the first call that needs it."""
    import numpy as np

    return _namespace(
        np,
        erf=_scipy("special", "erf"),
        # numpy's own: scipy.special's expit and softmax cost a process's first prediction ~0.15 s of imports
        sigmoid=lambda x: np.exp(-np.logaddexp(0, -x)),  # 1 / (1 + exp(-x)), tiny probabilities kept
        softplus=lambda x: np.logaddexp(0, x),
        softmax=_numpy_softmax,
        max=lambda x, axis=None: np.max(x, axis=axis),
        cholesky=np.linalg.cholesky,
        solve_lower=lambda a, b: _scipy("linalg", "solve_triangular")(a, b, lower=True),
        stop_gradient=lambda x: x,
        segment_sum=_numpy_segment_sum,
    )


def _scipy(module: str, name: str) -> Any:
    """``scipy.<module>.<name>``, imported when called (``scipy.special`` costs a fresh process ~0.1 s)."""

    def call(*args: Any, **kwargs: Any) -> Any:
        return getattr(import_module(f"scipy.{module}"), name)(*args, **kwargs)

    return call


def _numpy_softmax(x: Any, axis: int = -1) -> Any:
    import numpy as np

    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


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
        conv2d=_jax_conv2d,
    )


def _jax_conv2d(h: Any, kernel: Any, stride: tuple[int, int], pads: list[tuple[int, int]]) -> Any:
    """Cross-correlation of ``h`` (..., n, c, H, W) with ``kernel`` (..., filters, c, kh, kw).

    Leading (posterior draws) axes broadcast. With one input for all draws (the first layer),
    every draw's filters run as one convolution; with an input per draw, a ``vmap`` (XLA's grouped
    convolution). PyVarInf's LeNet, predictive of 100 draws x 200 images under ``jax.jit``
    (float32): 2.7 s, against 5.2 s with the layer's patches-and-matmul form.
    """
    import jax
    import jax.numpy as jnp
    import numpy as np

    def conv(x: Any, k: Any) -> Any:
        return jax.lax.conv_general_dilated(x, k, tuple(stride), [tuple(p) for p in pads],
                                            dimension_numbers=("NCHW", "OIHW", "NCHW"))

    lead = jnp.broadcast_shapes(h.shape[:-4], kernel.shape[:-4])
    if not lead:
        return conv(h, kernel)
    size = int(np.prod(lead))
    filters = kernel.shape[-4]
    kernels = jnp.broadcast_to(kernel, (*lead, *kernel.shape[-4:])).reshape(size * filters, *kernel.shape[-3:])
    if h.ndim == 4:  # (n, size * filters, ho, wo) -> (*lead, n, filters, ho, wo)
        out = conv(h, kernels)
        out = out.reshape(out.shape[0], size, filters, *out.shape[2:])
        return jnp.moveaxis(out, 0, 1).reshape(*lead, out.shape[0], filters, *out.shape[3:])
    inputs = jnp.broadcast_to(h, (*lead, *h.shape[-4:])).reshape(size, *h.shape[-4:])
    out = jax.vmap(conv)(inputs, kernels.reshape(size, filters, *kernel.shape[-3:]))
    return out.reshape(*lead, *out.shape[1:])


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


def jaxify(inputs: list, outputs: list) -> Any:
    """A PyTensor graph as a JAX function ``f(*inputs) -> list of outputs`` (shared variables as constants).

    What ``pymc.sampling.jax.get_jaxified_graph`` does (PyTensor's JAX rewrites, then
    ``jax_funcify``; PyMC's parameter checks and asserts pass their value through, as under
    ``jax.jit`` they must), without importing ``pymc.sampling.jax``: that module and what it
    imports (the NUTS samplers, ArviZ conversion) cost a fresh process ~0.3 s before its first fit.
    The graph's constants are put on the device as they are (``jax.device_put``), where
    PyTensor's ``jax_typify`` calls ``jnp.array``, which compiles a conversion for every new
    shape: ~12 ms each in a fresh process, 0.7 s for 56 constants on this project's machine.
    Importing PyTensor's JAX dispatch turns on JAX's x64 mode under ``floatX=float64``.
    """
    from pytensor.compile import SharedVariable, mode
    from pytensor.graph.fg import FunctionGraph
    from pytensor.graph.replace import clone_replace
    from pytensor.graph.traversal import graph_inputs
    from pytensor.link.utils import fgraph_to_python
    from pytensor.tensor import constant
    from pytensor.tensor.random.type import RandomType

    jax_funcify = jax_dispatch().jax_funcify
    _register_passthrough_checks()
    shared = [v for v in graph_inputs(outputs) if isinstance(v, SharedVariable)]
    if any(isinstance(v.type, RandomType) for v in shared):
        raise ValueError("The graph holds a random generator (a shared RandomType variable); it cannot become a constant")
    graph = clone_replace(outputs, replace={v: constant(v.get_value(borrow=True)) for v in shared}) if shared else outputs
    fgraph = FunctionGraph(inputs=inputs, outputs=graph, clone=True)
    mode.JAX.optimizer.rewrite(fgraph)
    return fgraph_to_python(fgraph, jax_funcify, type_conversion_fn=_jax_constant, fgraph_name="jax_funcified_fgraph")


def _jax_constant(data: Any, dtype: Any = None, **kwargs: Any) -> Any:
    """A graph constant for JAX: PyTensor's ``jax_typify``, but arrays moved with ``device_put`` (no compilation)."""
    import jax
    import numpy as np

    jax_typify = jax_dispatch().jax_typify
    if not isinstance(data, np.ndarray):
        return jax_typify(data, dtype=dtype, **kwargs)
    if data.ndim == 0:
        return data.item()  # as jax_typify: a Python scalar
    return jax.device_put(np.asarray(data, dtype=jax.dtypes.canonicalize_dtype(dtype or data.dtype)))


@cache
def jax_x64_as_pytensor() -> None:
    """Set JAX's x64 mode once, as importing PyTensor's JAX dispatch sets it (on under
    ``floatX=float64``, off otherwise), without that import (0.3 s): a program loaded from the disk
    cache needs the mode, not the dispatch. A process that imported the dispatch already, or
    changed the mode after the first fit, keeps its mode."""
    if "pytensor.link.jax.dispatch" in sys.modules:
        return
    import jax
    import pytensor

    jax.config.update("jax_enable_x64", pytensor.config.floatX == "float64")


@cache
def jax_dispatch() -> ModuleType:
    """PyTensor's JAX dispatch (``pytensor.link.jax.dispatch``), imported without NumPyro.

    PyTensor's JAX dispatch imports NumPyro, when it is installed, only to note that it can
    (its Binomial and von Mises samplers call NumPyro when they are converted); with SciPy's
    special functions, which NumPyro imports, that cost a fresh process 0.3 s before its
    first fit. Here NumPyro is kept out during that import and the note is set afterwards from
    whether NumPyro can be found, so the samplers behave as before and import it when they run.
    Importing the dispatch turns on JAX's x64 mode under ``floatX=float64``.
    """
    if "pytensor.link.jax.dispatch" in sys.modules or "numpyro" in sys.modules:
        import pytensor.link.jax.dispatch as dispatch

        return dispatch
    installed = importlib.util.find_spec("numpyro") is not None
    sys.modules["numpyro"] = None  # type: ignore[assignment]  # `import numpyro` raises ImportError meanwhile
    try:
        import pytensor.link.jax.dispatch as dispatch
        from pytensor.link.jax.dispatch import random
    finally:
        if sys.modules.get("numpyro", False) is None:
            del sys.modules["numpyro"]
    random.numpyro_available = installed
    return dispatch


@cache
def _register_passthrough_checks() -> None:
    from pymc.logprob.utils import CheckParameterValue
    from pytensor.raise_op import Assert

    jax_funcify = jax_dispatch().jax_funcify

    def passthrough(op: Any, **kwargs: Any) -> Any:
        return lambda value, *conditions: value

    jax_funcify.register(Assert)(passthrough)
    jax_funcify.register(CheckParameterValue)(passthrough)


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

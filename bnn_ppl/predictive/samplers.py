"""Compiled posterior-predictive samplers: graphs with X and the draws as inputs, compiled once.

Two samplers produce the same quantities (the likelihood parameter per draw and row, plus the
noise scale for regression):

- :class:`SampleNodeSampler`: PyMC's ``approx.sample_node`` (a scan over draws), the reference.
- :class:`BatchedSampler`: posterior draws of the flat parameter vector are made in numpy and
  pushed through the layers' own forward definition with a leading draws axis (one matmul
  per layer for all draws at once), in numpy or under ``jax.jit``.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import numpy as np
import pytensor
import pytensor.tensor as pt
from pymc.pytensorf import compile as pm_compile
from pymc.pytensorf import find_rng_nodes, reseed_rngs, resolve_backend_compile_kwargs
from pymc.logprob.transforms import LogTransform
from pytensor.graph.replace import graph_replace, vectorize_graph

from bnn_ppl.compile.data import float_dtype
from bnn_ppl.errors import ParameterError
from bnn_ppl.compile.likelihoods import NOISE_NAME
from bnn_ppl.array_ops import numpy_ops
from bnn_ppl.spec.layers import ForwardContext, network_forward

__all__ = ["SampleNodeSampler", "BatchedSampler"]


def _mode(backend: str | None) -> Any:
    return resolve_backend_compile_kwargs(backend, None).get("mode")


def _outputs(result: Any, x: pt.TensorVariable) -> list[pt.TensorVariable]:
    built = result.built
    ref = built.reference_X
    if ref is None:
        outs = [built.parameter(built.forward(x))]
    else:  # batch statistics from the fixed reference rows, placed first
        rows = ref.shape[0]
        out = built.forward(pt.concatenate([pt.constant(ref.astype(x.dtype)), x]), ForwardContext(stat_rows=rows))
        outs = [built.parameter(out[rows:])]
    if not built.spec.likelihood.is_classifier:
        outs.append(built.model[NOISE_NAME])
    return outs


class SampleNodeSampler:
    """``approx.sample_node`` over a symbolic X and number of draws, compiled once."""

    kind = "sample_node"

    def __init__(self, result: Any, backend: str | None = None) -> None:
        self.backend = backend
        ref = result.built.reference_X
        self.reference_rows = 0 if ref is None else ref.shape[0]
        x = pt.tensor("X_new", shape=(None, *result.built.spec.input_shape), dtype=float_dtype())
        n = pt.iscalar("draws")
        sampled = result.approx.sample_node(_outputs(result, x), size=n)
        if not isinstance(sampled, list | tuple):  # a one-output scan returns a bare variable
            sampled = [sampled]
        self._rngs = find_rng_nodes(sampled)
        self._fn = pm_compile([x, n], sampled, mode=_mode(backend))
        self.n_compiles = 1

    @property
    def functions(self) -> tuple:
        """The compiled PyTensor function(s) this sampler calls (built once)."""
        return (self._fn,)

    def draw(self, X: np.ndarray, draws: int, seed: int) -> list[np.ndarray]:
        """Parameter draws for every row of ``X`` (the same posterior draws for the same seed)."""
        reseed_rngs(self._rngs, seed)
        return [np.asarray(a) for a in self._fn(X, draws)]


def _predict(xp: Any, layers: list, likelihood: Any, params: dict, X: Any, reference: Any) -> Any:
    """Likelihood parameter draws; with ``reference`` rows, batch statistics come from them."""
    if reference is None:
        return likelihood.link(xp, network_forward(xp, layers, params, X))
    rows = reference.shape[0]
    out = network_forward(xp, layers, params, xp.concatenate([reference, X]), ForwardContext(stat_rows=rows))
    return likelihood.link(xp, out[..., rows:, :])


#: With ``backend=None``, a call whose draws x rows x parameters reaches this runs under
#: ``jax.jit`` (when JAX is installed) instead of numpy. 500 draws x the test rows, median ms
#: (numpy / JAX; float64, then float32 on one thread): moons 2-5-5-1 (12.8M) 18.5 / 5.9 and
#: 10.4 / 3.3, digits 64-32-10 (1.1G) 215 / 164 and 109 / 90; the first JAX call of a shape
#: compiles (~0.3 s), so small calls stay in numpy (a fast first prediction).
AUTO_JAX_WORK = 200_000_000


def _auto_jax(layers: list, likelihood: Any) -> Any:
    import importlib.util

    return _jax_predict(layers, likelihood) if importlib.util.find_spec("jax") is not None else None


def _jax_predict(layers: list, likelihood: Any) -> Any:
    """:func:`_predict` under ``jax.jit`` (traced once per chunk shape)."""
    import jax

    from bnn_ppl.array_ops import jax_dispatch, jax_ops

    jax_dispatch()  # turns on x64 under floatX=float64, as the JAX engine does

    xp = jax_ops()
    return jax.jit(lambda params, X, reference: _predict(xp, layers, likelihood, params, X, reference))


def _direct_slices(model: Any, layout: dict, tensors: list) -> list | None:
    """``(slice, shape, log)`` of each tensor when every one is a free RV's value in ``layout``
    (``log``: its value is the log of the RV, PyMC's ``LogTransform``); None otherwise."""
    out = []
    for tensor in tensors:
        if not any(tensor is rv for rv in model.free_RVs):
            return None  # a Deterministic (non-centred weights, shared scales, a fixed noise)
        transform = model.rvs_to_transforms.get(tensor)
        if transform is not None and not isinstance(transform, LogTransform):
            return None
        _, slc, shape, _ = layout[model.rvs_to_values[tensor].name]
        out.append((slc, tuple(shape), transform is not None))
    return out


def _compile_weights(model: Any, layout: dict, tensors: list, backend: str | None) -> Any:
    """``thetas (draws, D) -> [tensor draws]``, compiled once (transforms, non-centred scales)."""
    theta = pt.vector("theta", dtype=float_dtype())
    replacements = {}
    for value_name, (_, slc, shape, dtype) in layout.items():
        value_var = next(v for v in model.value_vars if v.name == value_name)
        replacements[value_var] = theta[slc].reshape(shape).astype(dtype)
    thetas = pt.matrix("thetas", dtype=float_dtype())
    graphs = graph_replace(model.replace_rvs_by_values(tensors), replacements, strict=False)
    mode = _mode(None if backend == "jax" else backend)
    return pytensor.function([thetas], vectorize_graph(graphs, {theta: thetas}), mode=mode)


def _structure(layers: Any) -> list:
    """What the compiled functions depend on: the layers (their priors' widths aside), shapes, prior kinds."""
    def without_priors(layer: Any) -> Any:
        return dataclasses.replace(layer, **{f.name: None for f in dataclasses.fields(layer) if f.name.endswith("prior")})

    return [(lr.name, without_priors(lr.layer), lr.in_shape, lr.out_shape, [(p.var_name, type(p.prior)) for p in lr.params])
            for lr in layers]


class BatchedSampler:
    """A batched forward pass over draws of the flat parameter vector, compiled once.

    A compiled PyTensor function maps parameter draws to every layer's parameter tensors
    (elementwise work: transforms, non-centred scales), with a leading draws axis. The layers'
    own forward definition then runs once for all draws: in numpy (BLAS-batched matmuls, which
    beat a numba ``Blockwise`` dot by an order of magnitude here) or, with ``backend="jax"``,
    under ``jax.jit``.
    """

    kind = "batched"

    def __init__(self, result: Any, backend: str | None = None, *, direct: bool = True) -> None:
        self.backend = backend
        self._posterior = result.posterior
        built = result.built
        self._layers = built.layers
        self._likelihood = built.spec.likelihood
        model = built.model
        self._keys = [(layer.name, p.key) for layer in built.layers for p in layer.params]
        tensors = [built.params[name][key] for name, key in self._keys]
        self._has_noise = not built.spec.likelihood.is_classifier
        if self._has_noise:
            tensors.append(model[NOISE_NAME])
        # Every tensor a free RV's value (or exp of a log-transformed one): slices of the draws,
        # nothing to compile (a cold numba compile of the weights function cost ~4 s).
        self._slices = _direct_slices(model, result.posterior.layout, tensors) if direct else None
        self._weights_fn = None
        if self._slices is None:
            self._weights_fn = _compile_weights(model, result.posterior.layout, tensors, backend)
        self._reference = None if built.reference_X is None else built.reference_X.astype(float_dtype())
        self.reference_rows = 0 if self._reference is None else self._reference.shape[0]
        self._jax_fn = _jax_predict(self._layers, self._likelihood) if backend == "jax" else None
        self._n_params = sum(p.size for layer in self._layers for p in layer.params)
        self.n_compiles = 0 if self._weights_fn is None else 1

    @property
    def functions(self) -> tuple:
        """The compiled PyTensor function(s) this sampler calls (built once; none when every
        parameter tensor is a slice of the flat draws)."""
        return () if self._weights_fn is None else (self._weights_fn,)

    def _tensors(self, thetas: np.ndarray) -> list[np.ndarray]:
        if self._weights_fn is not None:
            return list(self._weights_fn(thetas))
        draws = thetas.shape[0]
        return [(np.exp(thetas[:, slc]) if log else thetas[:, slc]).reshape(draws, *shape) for slc, shape, log in self._slices]

    def for_result(self, result: Any) -> BatchedSampler:
        """This sampler for another fit of the same network (same layers and parameter layout):
        shares the compiled functions, reads ``result``'s posterior and reference rows."""
        if _structure(result.built.layers) != _structure(self._layers) or result.posterior.layout != self._posterior.layout:
            raise ParameterError("for_result needs a fit of the same network (layers, prior kinds, parameter layout).")
        other = copy.copy(self)
        other._posterior = result.posterior
        reference = result.built.reference_X
        other._reference = None if reference is None else reference.astype(float_dtype())
        other.n_compiles = 0
        return other

    def draw_params(self, draws: int, rng: np.random.Generator, *, start: int = 0, total: int | None = None) -> np.ndarray:
        """(draws, D) posterior draws of the flat parameter vector (draws ``start ..`` of ``total``: an
        ensemble's members keep their equal shares when the draws come in batches)."""
        return self._posterior.draw(draws, rng, start=start, total=total).astype(float_dtype())

    def evaluate(self, thetas: np.ndarray, X: np.ndarray, *, work: int | None = None) -> list[np.ndarray]:
        """Parameter draws (draws, rows[, classes]) for the given flat-parameter draws.

        ``work``: draws x rows of the whole call this chunk belongs to (default: this chunk's),
        which decides the backend when none was given (``AUTO_JAX_WORK``): a convnet's chunks
        hold one draw each within the memory budget, yet the call as a whole is large (LeNet,
        100 draws x 200 images, float32: 7.7 s chunk by chunk in numpy, 2.7 s under JAX).
        """
        tensors = self._tensors(thetas)
        params: dict[str, dict[str, np.ndarray]] = {layer.name: {} for layer in self._layers}
        for (name, key), value in zip(self._keys, tensors, strict=False):
            params[name][key] = value
        X = X.astype(float_dtype(), copy=False)
        work = thetas.shape[0] * X.shape[0] if work is None else work
        if self._jax_fn is None and self.backend is None and work * self._n_params >= AUTO_JAX_WORK:
            self._jax_fn = _auto_jax(self._layers, self._likelihood)
        if self._jax_fn is not None:
            out = [np.asarray(self._jax_fn(params, X, self._reference))]
        else:
            out = [_predict(numpy_ops(), self._layers, self._likelihood, params, X, self._reference)]
        if self._has_noise:  # one sigma per draw (a known sigma is a constant of the graph: broadcast it)
            out.append(np.broadcast_to(np.asarray(tensors[-1]).reshape(-1), (thetas.shape[0],)))
        return out

"""The model's log-density as a function of a flat parameter vector and explicit data inputs.

Engines that run many steps per compiled call need the data passed in (never baked in as
constants) and one flat vector of unconstrained parameters in the same layout as the PyMC
approximation (``group.ordering``), so they can read and write its ``mu``/``rho``/``L_tril``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from pymc.data import MinibatchOp
from pytensor.tensor.random.basic import NormalRV
from pytensor.tensor.random.op import RandomVariable
from pytensor.graph.replace import graph_replace
from pytensor.graph.traversal import ancestors
from pytensor.scalar import Cast, Log, Sigmoid, Sub, Switch
from pytensor.tensor.elemwise import Elemwise
from pytensor.tensor.random.type import RandomType

from bnn_ppl.compile import BuiltModel
from bnn_ppl.compile.likelihoods import OBSERVED_NAME

__all__ = ["FlatLogp", "fixed_normal", "flat_logp", "lean_bernoulli_rows"]


class FlatLogp:
    """``logp(theta, X_batch, y_batch[, prior_scale])`` as a PyTensor graph.

    Attributes
    ----------
    theta, x, y : TensorVariable
        Symbolic inputs: flat unconstrained parameters (D,), a batch of inputs and targets.
    prior_scale : TensorVariable
        Symbolic scalar input standing for the model's ``"prior_scale"`` ``pm.Data`` (a model
        built with ``build_model(prior_scale=...)``); unused by the graph of other models.
    prior_scale_value : float
        The value that container holds now (1.0 without one).
    rows : TensorVariable
        The likelihood's term of every row of the batch, scaled by ``n_obs / batch`` when the
        model was built with a ``batch_size`` (PyMC's ``total_size``).
    gaussian_mask : ndarray of bool
        (D,): True at every coordinate of a free variable with a Normal prior whose mean and
        sigma are fixed (constants and ``prior_scale``, no other random variable). The engines
        evaluate these terms in one elementwise pass over theta (or, with
        ``ELBO(kl="closed_form")``, in closed form) instead of PyMC's per-variable graph.
    gaussian_mu, gaussian_sigma : TensorVariable
        (D,): those coordinates' prior means and sigmas (graphs of ``prior_scale`` only; 0 and
        1 elsewhere).
    rest_other : TensorVariable
        The log-density of everything but the likelihood and those Normal terms: what the
        engines take from PyMC's graph (every other prior, Jacobians, user-added variables and
        potentials). ``rest_other + rows.sum()`` plus the Normal terms is ``model.logp()``.
    output_in, rows_given_output : TensorVariable or None
        A symbolic stand-in for ``output`` and the likelihood's ``rows`` as a graph of it (with
        ``theta``, ``y`` and ``prior_scale``), so an engine may compute the network's forward
        pass its own way (:mod:`~bnn_ppl.inference.engines.features_first`); None when the
        observed variable does not depend on the network's output as the spec built it, or
        with ``output_split=False``.
    layer_params : dict
        Layer name -> {parameter key -> its tensor as a graph of ``theta`` and ``prior_scale``}
        (non-centred priors included: what the layer's forward pass multiplies by); empty with
        ``output_split=False``.
    size : int
        D, the number of unconstrained parameters.
    X, y_data : ndarray
        The training data currently in the model's ``pm.Data`` containers.
    """

    #: The attributes built with PyMC's log-density graph, on first use (~0.1-0.3 s of PyMC's
    #: logp and graph rewrites: a JAX fit whose program is loaded from disk never needs them).
    GRAPH = ("rows", "gaussian_mask", "gaussian_mu", "gaussian_sigma", "rest_other", "output_in",
             "rows_given_output", "layer_params")

    def __init__(self, built: BuiltModel, ordering: dict, output_split: bool) -> None:
        self._built, self._ordering, self._output_split = built, ordering, output_split
        X = np.asarray(built.X_data.get_value())
        y = np.asarray(built.y_data.get_value())
        # Static row counts: JAX traces reshapes (convolution patches) only with concrete shapes.
        batch = built.batch_size or X.shape[0]
        self.X, self.y_data, self.batch = X, y, batch
        self.x = pt.tensor("X_batch", shape=(batch, *X.shape[1:]), dtype=X.dtype)
        self.y = pt.tensor("y_batch", shape=(batch,), dtype=y.dtype)
        self.size = sum(int(np.prod(shape)) for _, _, shape, _ in ordering.values())
        self.theta = pt.vector("theta", shape=(self.size,), dtype=X.dtype)
        self.prior_scale = pt.scalar("prior_scale", dtype=X.dtype)
        data = built.prior_scale_data
        self.prior_scale_value = 1.0 if data is None else float(data.get_value())

    def __getattr__(self, name: str) -> Any:
        if name not in FlatLogp.GRAPH:
            raise AttributeError(name)
        try:
            self.__dict__.update(_graph(self))
        except AttributeError as error:  # inside PyMC's graph: not "FlatLogp has no attribute {name}"
            raise RuntimeError(f"Building the log-density graph failed: {error}") from error
        return self.__dict__[name]


def _is(var, scalar_op: type) -> bool:
    return var.owner is not None and isinstance(var.owner.op, Elemwise) and isinstance(var.owner.op.scalar_op, scalar_op)


def lean_bernoulli_rows(rows: pt.TensorVariable) -> pt.TensorVariable:
    """``rows`` with PyMC's Bernoulli-logit term written as ``y * f - softplus(f)``.

    ``pm.Bernoulli(logit_p=f)`` evaluates ``switch(y, log(sigmoid(f)), log(1 - sigmoid(f)))``,
    which PyTensor turns into two piecewise softplus (three exponentials and a ``log1p`` each,
    every branch computed): for y in {0, 1} it equals ``y * f - max(f, 0) - log1p(exp(-|f|))``,
    one exponential and one ``log1p`` per row, as stable for large ``|f|``. PyMC's bounds check
    on ``y`` and its ``total_size`` scaling stay. Graphs without that pattern come back as they are.
    """
    replacements = {}
    for var in ancestors([rows]):
        if not _is(var, Switch):
            continue
        cond, yes, no = var.owner.inputs
        if not (_is(cond, Cast) and _is(yes, Log) and _is(no, Log)):
            continue
        p, one_minus_p = yes.owner.inputs[0], no.owner.inputs[0]
        if not (_is(p, Sigmoid) and _is(one_minus_p, Sub) and one_minus_p.owner.inputs[1] is p):
            continue
        f = p.owner.inputs[0]
        y = pt.cast(cond.owner.inputs[0], f.dtype)
        replacements[var] = (y * f - pt.maximum(f, 0) - pt.log1p(pt.exp(-pt.abs(f)))).astype(var.dtype)
    return graph_replace(rows, replacements, strict=False) if replacements else rows


def fixed_normal(model, rv) -> bool:
    """A Normal free variable, untransformed, whose mean and sigma depend on no random variable."""
    if not isinstance(rv.owner.op, NormalRV) or model.rvs_to_transforms.get(rv) is not None:
        return False
    params = rv.owner.op.dist_params(rv.owner)
    randoms = set(model.basic_RVs) | set(model.value_vars)
    return not any(v in randoms or (v.owner is not None and isinstance(v.owner.op, RandomVariable))
                   for v in ancestors(params))


def flat_logp(built: BuiltModel, ordering: dict, output_split: bool = True) -> FlatLogp:
    """:class:`FlatLogp` for ``built`` in the layout of an approximation's ``ordering`` (its
    graph attributes are built on first use).

    ``output_split=False`` leaves out ``rows_given_output`` and ``layer_params`` (one more PyMC
    logp of the likelihood), for an engine that will not compute the forward pass itself.
    """
    return FlatLogp(built, ordering, output_split)


def _graph(flat: FlatLogp) -> dict[str, Any]:
    """The attributes ``FlatLogp.GRAPH`` of ``flat``: PyMC's log-density graph, split and replaced."""
    built, ordering, output_split = flat._built, flat._ordering, flat._output_split
    model = built.model
    observed = model[OBSERVED_NAME]
    rows = lean_bernoulli_rows(model.logp(vars=[observed], sum=False)[0])
    others = [rv for rv in model.basic_RVs if rv is not observed]
    normals = [rv for rv in model.free_RVs if fixed_normal(model, rv)]
    rest_other = model.logp(vars=[rv for rv in others if rv not in normals] + list(model.potentials))
    names = [(layer, key) for layer, block in built.params.items() for key in block] if output_split else []
    layer_values = model.replace_rvs_by_values([built.params[layer][key] for layer, key in names]) if names else []
    X, x_in, y_in, batch, size = flat.X, flat.x, flat.y, flat.batch, flat.size
    if built.batch_size is None:
        replacements = {built.X_data: x_in, built.y_data: y_in}
    else:
        # The logp graph may hold more than one copy of the Minibatch node (the observed value
        # and the likelihood's own graph); every copy slices the same (X, y) rows.
        nodes = {v.owner for v in ancestors([rows]) if v.owner is not None and isinstance(v.owner.op, MinibatchOp)}
        if not nodes:
            raise RuntimeError("A model built with batch_size has no Minibatch node in its logp graph")
        replacements = {}
        for node in nodes:
            # outputs: the next RNG state, then one slice per data input (X, y) in order
            data_outputs = [out for out in node.outputs if not isinstance(out.type, RandomType)]
            replacements.update(zip(data_outputs, (x_in, y_in), strict=True))
    by_name = {v.name: v for v in model.value_vars}
    for name, (_, slc, shape, dtype) in ordering.items():
        replacements[by_name[name]] = flat.theta[slc].reshape(shape).astype(dtype)
    if built.prior_scale_data is not None:
        replacements[built.prior_scale_data] = flat.prior_scale
    mask = np.zeros(size, dtype=bool)
    mus, sigmas = [], []
    normal_values = {model.rvs_to_values[rv].name: rv for rv in normals}
    for name, (_, slc, shape, _) in ordering.items():  # in theta's order
        rv = normal_values.get(name)
        if rv is None:
            mus.append(pt.zeros(slc.stop - slc.start, dtype=X.dtype))
            sigmas.append(pt.ones(slc.stop - slc.start, dtype=X.dtype))
            continue
        mask[slc] = True
        mu, sigma = rv.owner.op.dist_params(rv.owner)
        mus.append(pt.broadcast_to(mu, shape).ravel().astype(X.dtype))
        sigmas.append(pt.broadcast_to(sigma, shape).ravel().astype(X.dtype))
    g_mu, g_sigma = pt.concatenate(mus), pt.concatenate(sigmas)
    output_in = pt.tensor("output", shape=(batch, *built.layers[-1].out_shape), dtype=X.dtype)
    rows_given = _rows_given_output(built, output_in, y_in) if output_split else None
    parts = [rows, rest_other, g_mu, g_sigma, *layer_values]
    if rows_given is not None:
        parts.append(rows_given)
    replaced = graph_replace(parts, replacements, strict=False)
    rows, rest_other, g_mu, g_sigma = replaced[:4]
    layer_params: dict = {layer: {} for layer in built.params} if output_split else {}
    for (layer, key), value in zip(names, replaced[4:4 + len(names)], strict=True):
        layer_params[layer][key] = value
    rows_given = replaced[-1] if rows_given is not None else None
    return {"rows": rows, "gaussian_mask": mask, "gaussian_mu": g_mu, "gaussian_sigma": g_sigma,
            "rest_other": rest_other, "output_in": output_in if rows_given is not None else None,
            "rows_given_output": rows_given, "layer_params": layer_params}


def _rows_given_output(built: BuiltModel, output_in: pt.TensorVariable, y_in: pt.TensorVariable):
    """The likelihood's rows as PyMC computes them, with the network's output replaced by ``output_in``.

    PyMC's logp of the observed variable lifts its ``output[:, 0]`` into the last layer's
    matmul, so the output cannot be found in ``rows`` afterwards: the observed variable is
    cloned with ``output_in`` in place of the output, and its logp (``total_size`` scaling and
    bounds checks included) taken again. None when that clone no longer depends on the output.
    """
    model = built.model
    observed = graph_replace(model[OBSERVED_NAME], {built.output: output_in}, strict=False)
    if output_in not in set(ancestors([observed])):
        return None
    rows = model.replace_rvs_by_values([pm.logp(observed, y_in)])[0]
    if any(v.owner is not None and isinstance(v.owner.op, RandomVariable) for v in ancestors([rows])):
        return None
    return lean_bernoulli_rows(rows)

"""The JAX engine's features-first forward pass for dense networks: the same objective, chosen where it pays."""

from __future__ import annotations

import math

import numpy as np
import pytest

import bnn_ppl as bp
from bnn_ppl.array_ops import numpy_ops
from bnn_ppl.inference.engines import features_first as ff
from bnn_ppl.inference.engines.objective import flat_logp
from bnn_ppl.spec.activations import ACTIVATIONS

jax = pytest.importorskip("jax")


def _layout(built):
    """The flat layout bp.fit uses (PyMC's approximation ordering)."""
    from bnn_ppl.inference.families import flat_layout

    return flat_layout(built.model)


def _data(rows, kind, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, 3))
    if kind == "bernoulli":
        return X, (X[:, 0] + 0.3 * rng.normal(size=rows) > 0).astype(int)
    if kind == "categorical":
        return X, np.digitize(X[:, 0] + 0.5 * X[:, 1], [-0.5, 0.5])
    return X, np.sin(X[:, 0]) + 0.1 * rng.normal(size=rows)


CASES = {
    "bernoulli, full batch, prior_scale, a layer without bias": (
        bp.Network([bp.Dense(5, "tanh"), bp.Dense(4, "relu", bias=False), bp.Dense(1, "identity")], bp.Bernoulli()),
        "bernoulli", 200, None, {"prior_scale": 0.7}),
    "categorical, minibatch": (bp.Network([bp.Dense(6, "gelu"), bp.Dense(3, "identity")], bp.Categorical(3)),
                               "categorical", 400, 128, {}),
    "categorical, a layer wider than the input, minibatch": (
        bp.Network([bp.Dense(40, "tanh"), bp.Dense(3, "identity")], bp.Categorical(3)), "categorical", 400, 64, {}),
    "normal with free noise, minibatch, hierarchical and horseshoe priors": (
        bp.Network([bp.Dense(5, "silu", prior=bp.Hierarchical()), bp.Dense(1, "identity", prior=bp.Horseshoe())],
                   bp.NormalLikelihood()), "normal", 300, 150, {}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_features_first_logp_and_gradient_equal_pymc_graph(case):
    from bnn_ppl.array_ops import jaxify, pymc_jax_bridge

    get_jaxified_graph = pymc_jax_bridge().get_jaxified_graph  # PyMC's own bridge, for the reference
    spec, kind, rows, batch, extra = CASES[case]
    X, y = _data(rows, kind)
    built = bp.build_model(spec, X, y, batch_size=batch, random_seed=0, **extra)
    flat = flat_logp(built, _layout(built))
    assert ff.runs_features_first(built, flat, "cpu")
    reference = get_jaxified_graph(inputs=[flat.theta, flat.x, flat.y, flat.prior_scale],
                                   outputs=[flat.rest_other, flat.rows])
    lean = ff.features_first_logp(built, flat, jaxify)

    n = flat.x.type.shape[0]
    xb, yb = flat.X[:n], flat.y_data[:n]
    theta = np.random.default_rng(1).normal(0, 0.8, flat.size)
    scale = flat.prior_scale_value
    reference, lean = jax.jit(reference), jax.jit(lean)  # compiled: faster than op by op here

    def total(fn, th):
        rest, rows_ = fn(th, xb, yb, scale)
        return rest + rows_.sum()

    want_rest, want_rows = reference(theta, xb, yb, scale)
    got_rest, got_rows = lean(theta, xb, yb, scale)
    np.testing.assert_allclose(got_rows, want_rows, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(got_rest, want_rest, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(jax.grad(lambda th: total(lean, th))(theta),
                               jax.grad(lambda th: total(reference, th))(theta), rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_dense_features_first_forward_is_its_forward_transposed(activation):
    rng = np.random.default_rng(0)
    layer = bp.Dense(4, activation)
    params = {"w": rng.normal(size=(3, 4)), "b": rng.normal(size=4)}
    h = rng.normal(size=(7, 3))
    from bnn_ppl.spec.layers import ForwardContext

    want = layer.forward(numpy_ops(), params, h, (3,), ForwardContext())
    got = layer.forward_features_first(numpy_ops(), params, h.T, (3,))
    np.testing.assert_allclose(got.T, want, rtol=1e-12, atol=1e-12)


def test_features_first_is_chosen_where_it_measured_equal_or_faster():
    X, y = _data(300, "bernoulli")
    narrow = bp.Network([bp.Dense(5, "tanh"), bp.Dense(5, "tanh"), bp.Dense(1, "identity")], bp.Bernoulli())

    def choice(spec, batch=None, backend="cpu", rows=300):
        built = bp.build_model(spec, X[:rows], y[:rows], batch_size=batch, random_seed=0)
        return ff.runs_features_first(built, flat_logp(built, _layout(built)), backend)

    assert choice(narrow)
    built = bp.build_model(narrow, X, y, random_seed=0)
    assert ff.could_run_features_first(built, "cpu")
    lean_only = flat_logp(built, _layout(built), output_split=False)  # what the engine builds for other networks
    assert lean_only.rows_given_output is None and not ff.runs_features_first(built, lean_only, "cpu")
    # rows per step at least the widest layer's width (units or input features): features first
    assert choice(narrow, batch=5) and not choice(narrow, batch=4)
    assert choice(bp.Network([bp.Dense(300, "tanh"), bp.Dense(1, "identity")], bp.Bernoulli()))
    assert not choice(bp.Network([bp.Dense(301, "tanh"), bp.Dense(1, "identity")], bp.Bernoulli()))
    assert not choice(narrow, backend="gpu")
    image = bp.Network([bp.Conv2D(2, 3, activation="relu"), bp.Flatten(), bp.Dense(1, "identity")], bp.Bernoulli(),
                       input_shape=(1, 4, 4))
    built = bp.build_model(image, np.random.default_rng(0).normal(size=(200, 1, 4, 4)), y[:200], random_seed=0)
    assert not ff.runs_features_first(built, flat_logp(built, _layout(built)), "cpu")


def test_a_fit_follows_the_same_path_either_way(monkeypatch):
    X, y = _data(256, "bernoulli", seed=3)
    spec = bp.Network([bp.Dense(5, "tanh"), bp.Dense(1, "identity")], bp.Bernoulli())
    built = bp.build_model(spec, X, y, random_seed=0)
    fits = []
    for rows_per_unit in (ff.ROWS_PER_UNIT, math.inf):
        monkeypatch.setattr(ff, "ROWS_PER_UNIT", rows_per_unit)
        fits.append(bp.fit(built, n=600, method="advi", random_seed=2, progressbar=False))
    lean, reference = fits
    np.testing.assert_allclose(lean.losses, reference.losses, rtol=1e-7)
    for name, value in reference.posterior.values().items():
        np.testing.assert_allclose(lean.posterior.values()[name], value, rtol=1e-7, atol=1e-9)

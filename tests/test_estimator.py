"""The -ELBO estimators (bp.ELBO): closed-form KL and path gradient agree with PyMC's objective in expectation."""

from __future__ import annotations

import numpy as np
import pytest

import bnn_ppl as bp
from bnn_ppl.array_ops import jax_ops
from bnn_ppl.errors import ModelFileError, ParameterError
from bnn_ppl.inference.engines.objective import flat_logp
from bnn_ppl.inference.families import flat_layout, resolve_family

jax = pytest.importorskip("jax")
jnp = jax.numpy

PRIORS = {
    "normal": bp.Normal(1.0),
    "fan_in_normal": bp.FanInNormal(),
    "laplace": bp.Laplace(0.5),
    "student_t": bp.StudentT(3.0, 1.0),
    "hierarchical": bp.Hierarchical(),
    "horseshoe": bp.Horseshoe(),
    "scale_mixture": bp.ScaleMixture(),
}


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 2))
    return X, (X[:, 0] * X[:, 1] > 0).astype(int)


def _setup(built, family, seed=0):
    """The flat objective (as the JAX engine builds it), PyMC's own logp, and random q parameters."""
    from bnn_ppl.array_ops import pymc_jax_bridge

    get_jaxified_graph = pymc_jax_bridge().get_jaxified_graph

    layout = flat_layout(built.model)
    flat = flat_logp(built, layout)
    fn = get_jaxified_graph(inputs=[flat.theta, flat.x, flat.y, flat.prior_scale], outputs=[flat.rest_other, flat.rows])
    prior_fn = get_jaxified_graph(inputs=[flat.prior_scale], outputs=[flat.gaussian_mu, flat.gaussian_sigma])
    rng = np.random.default_rng(seed)
    params = family.initial_params(rng.normal(0.0, 0.7, flat.size), 0.4, rng)
    params = family.to_engine({k: v + rng.normal(0.0, 0.1, np.shape(v)) for k, v in params.items()})
    return flat, fn, prior_fn, {k: jnp.asarray(v) for k, v in params.items()}, layout


def _estimates(flat, fn, prior_fn, family, params, elbo, eps):
    """One -ELBO estimate and its gradient per row of ``eps`` (draws, noise)."""
    xp = jax_ops()
    X, y = jnp.asarray(flat.X), jnp.asarray(flat.y_data)
    gaussian = (flat.gaussian_mask, *prior_fn(jnp.asarray(1.0)))

    def one(q, e):
        theta = family.sample(xp, q, e[None])
        rest, rows = fn(theta[0], X, y, jnp.asarray(1.0))
        return elbo.neg_elbo(xp, family, q, theta, rows.sum(), rest, gaussian)

    return jax.vmap(jax.value_and_grad(one), in_axes=(None, 0))(params, eps)


@pytest.mark.parametrize("prior", list(PRIORS), ids=list(PRIORS))
def test_lean_objective_is_pymc_logp_and_closed_form_agrees_in_expectation(prior, data):
    """Mean-field q, every prior family, against ``model.compile_logp()`` (PyMC's own graph).

    The engines' objective (PyMC's graph without the fixed Normal prior terms, those terms in
    one flat pass) equals PyMC's -ELBO estimate draw by draw; the closed-form KL estimate's mean
    agrees with it within 4 standard errors of their difference."""
    X, y = data
    spec = bp.Network([bp.Dense(3), bp.Dense(1, "identity")], bp.Bernoulli(), prior=PRIORS[prior])
    built = bp.build_model(spec, X, y)
    family = resolve_family("advi")
    flat, fn, prior_fn, params, layout = _setup(built, family)
    draws = 800
    eps = jax.random.normal(jax.random.key(1), (draws, flat.size))
    closed, _ = _estimates(flat, fn, prior_fn, family, params, bp.ELBO(kl="closed_form"), eps)
    sampled, _ = _estimates(flat, fn, prior_fn, family, params, bp.ELBO(), eps)
    theta = np.asarray(family.sample(jax_ops(), params, eps), dtype=float)
    logp = built.model.compile_logp()
    entropy = float(family.entropy(jax_ops(), params))
    reference = np.array([-logp({name: th[slc].reshape(shape) for name, (_, slc, shape, _) in layout.items()})
                          for th in theta]) - entropy
    np.testing.assert_allclose(np.asarray(sampled, dtype=float), reference, rtol=1e-9, atol=1e-8)
    difference = np.asarray(closed, dtype=float) - reference
    se = difference.std() / np.sqrt(draws)
    assert abs(difference.mean()) < 4 * se + 1e-6, (difference.mean(), se)
    if prior in ("normal", "fan_in_normal"):  # every prior term is Gaussian: no prior noise left
        assert flat.gaussian_mask.all()
        assert np.std(closed) < 0.98 * np.std(reference)
    else:
        assert not flat.gaussian_mask.all()


@pytest.mark.parametrize("method", ["advi", "fullrank_advi", "lowrank_advi"])
def test_every_estimator_has_the_same_expected_gradient(method, data):
    """Closed-form KL and path gradient change the noise, not the expected loss and gradient."""
    X, y = data
    spec = bp.Network([bp.Dense(3), bp.Dense(1, "identity")], bp.Bernoulli(), prior=bp.Normal(1.0))
    built = bp.build_model(spec, X, y)
    family = resolve_family(method)
    flat, fn, prior_fn, params, _ = _setup(built, family, seed=3)
    eps = jax.random.normal(jax.random.key(2), (4000, family.noise_size(flat.size)))
    results = {}
    for elbo in (bp.ELBO(), bp.ELBO(kl="closed_form"), bp.ELBO(gradient="path")):
        values, grads = _estimates(flat, fn, prior_fn, family, params, elbo, eps)
        results[elbo] = (np.asarray(values, dtype=float), np.asarray(grads["mu"], dtype=float))
    base_values, base_grads = results[bp.ELBO()]
    for elbo, (values, grads) in results.items():
        diff = values - base_values
        assert abs(diff.mean()) < 4 * diff.std() / np.sqrt(diff.size) + 1e-6, elbo
        gdiff = grads - base_grads
        se = gdiff.std(axis=0) / np.sqrt(gdiff.shape[0]) + 1e-9
        assert np.all(np.abs(gdiff.mean(axis=0)) < 5 * se + 1e-5), elbo


def test_closed_form_fit_runs_on_every_engine_and_round_trips(data, tmp_path):
    X, y = data
    spec = bp.Network([bp.Dense(3), bp.Dense(1, "identity")], bp.Bernoulli(), prior=bp.Normal(1.0))
    built = bp.build_model(spec, X, y)
    elbo = bp.ELBO(kl="closed_form", gradient="path")
    fits = {engine: bp.fit(built, 1500, method="advi", engine=engine, elbo=elbo, random_seed=0, progressbar=False)
            for engine in ("jax", "numba")}
    for result in fits.values():
        assert result.elbo == elbo
        assert np.isfinite(result.losses).all()
    # same estimator, different random streams: the fitted -ELBO agrees between engines
    assert abs(fits["jax"].losses[-300:].mean() - fits["numba"].losses[-300:].mean()) < 2.0
    path = fits["jax"].save(tmp_path / "cf.bnn")
    assert bp.load(path).elbo == elbo
    with pytest.raises(ParameterError, match="engine='pymc' runs PyMC's own ADVI objective"):
        bp.fit(built, 10, method="advi", engine="pymc", elbo=bp.ELBO(kl="closed_form"), progressbar=False)
    with pytest.raises(ParameterError, match="must be a bp.ELBO"):
        bp.fit(built, 10, elbo="closed_form", progressbar=False)


@pytest.mark.parametrize("damage", [{"kl": "exact"}, {"kl_weight": -1}, {"kl_weight": "half"}, {"beta": 1}])
def test_edited_elbo_in_a_model_file_is_refused(damage, data, tmp_path):
    import json
    import zipfile

    X, y = data
    spec = bp.Network([bp.Dense(2), bp.Dense(1, "identity")], bp.Bernoulli())
    result = bp.fit(bp.build_model(spec, X, y), 200, method="advi", random_seed=0, progressbar=False)
    path = result.save(tmp_path / "m.bnn")
    edited = tmp_path / "edited.bnn"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(edited, "w") as dst:
        for item in src.infolist():
            content = src.read(item.filename)
            if item.filename == "fit.json":
                info = json.loads(content)
                info["elbo"] = damage
                content = json.dumps(info).encode()
            dst.writestr(item, content)
    with pytest.raises(ModelFileError, match="elbo"):
        bp.load(edited)


def test_estimators_take_the_elbo_and_keep_it_through_save_and_clone(data, tmp_path):
    from sklearn.base import clone

    X, y = data
    elbo = bp.ELBO(kl="closed_form")
    clf = bp.BNNClassifier((3,), n_iter=500, method="advi", elbo=elbo, random_state=0).fit(X, y)
    assert clf.result_.elbo == elbo and clone(clf).get_params()["elbo"] == elbo
    clf.save(tmp_path / "clf.bnn")
    loaded = bp.BNNClassifier.load(tmp_path / "clf.bnn")
    assert loaded.get_params()["elbo"] == elbo
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    assert "ELBO kl=closed_form" in repr(clf.result_)


@pytest.mark.parametrize("engine", ["jax", "numba"])
def test_kl_weight_is_the_elbo_of_data_counted_one_over_beta_times(engine, data, tmp_path):
    """-E[log lik] + beta KL = beta (-ELBO of the rows repeated 1/beta times); Adam ignores the scale,
    so the fits follow the same path. The weight survives save/load and shows in the summary."""
    X, y = data
    spec = bp.Network([bp.Dense(3), bp.Dense(1, "identity")], bp.Bernoulli(), prior=bp.Normal(1.0))
    elbo = bp.ELBO(kl_weight=0.5)
    kwargs = {"method": "advi", "engine": engine, "random_seed": 0, "progressbar": False}
    cold = bp.fit(bp.build_model(spec, X, y, random_seed=1), 300, elbo=elbo, **kwargs)
    doubled = bp.fit(bp.build_model(spec, np.tile(X, (2, 1)), np.tile(y, 2), random_seed=1), 300, **kwargs)
    np.testing.assert_allclose(cold.losses, 0.5 * doubled.losses, rtol=1e-6)
    np.testing.assert_allclose(cold.params()["mu"], doubled.params()["mu"], rtol=1e-5, atol=1e-7)
    assert cold.elbo == elbo and "kl_weight=0.5" in repr(cold)
    assert bp.load(cold.save(tmp_path / "cold.bnn")).elbo == elbo


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), True, np.bool_(True), "0.5", None])
def test_kl_weight_must_be_a_positive_number(bad):
    with pytest.raises(ParameterError, match="'kl_weight' of ELBO must be a finite number > 0"):
        bp.ELBO(kl_weight=bad)
    # numpy scalars are numbers too, stored as a plain float (fit.json takes it)
    assert bp.ELBO(kl_weight=np.float32(0.5)) == bp.ELBO(kl_weight=0.5)
    assert type(bp.ELBO(kl_weight=np.int64(2)).kl_weight) is float


@pytest.mark.parametrize("batch_size", [None, 8])
def test_lean_bernoulli_rows_equal_pymcs_with_their_gradient_at_extreme_logits(batch_size, data):
    """The engines' Bernoulli term (y f - softplus f) against PyMC's, per row, logits up to +-80."""
    import pytensor
    import pytensor.tensor as pt
    from pytensor.scalar import Log, Sigmoid

    from bnn_ppl.compile.likelihoods import OBSERVED_NAME
    from bnn_ppl.inference.engines.objective import lean_bernoulli_rows

    X, y = data
    spec = bp.Network([bp.Dense(3), bp.Dense(1, "identity")], bp.Bernoulli(), prior=bp.Normal(1.0))
    built = bp.build_model(spec, X, y, batch_size=batch_size)
    model = built.model
    rows = model.logp(vars=[model[OBSERVED_NAME]], sum=False)[0]
    lean = lean_bernoulli_rows(rows)
    assert lean is not rows  # the pattern was found in this PyMC's graph

    def log_of_sigmoid(graph):  # PyMC's form: log(sigmoid(f)) nodes
        def op(v):
            return getattr(v.owner.op, "scalar_op", None) if v.owner is not None else None
        return [v for v in pytensor.graph.traversal.ancestors([graph])
                if isinstance(op(v), Log) and isinstance(op(v.owner.inputs[0]), Sigmoid)]

    assert log_of_sigmoid(rows) and not log_of_sigmoid(lean)
    values = model.value_vars
    grads = [pt.grad(r.sum(), values) for r in (rows, lean)]
    # one function: both graphs share the Minibatch node, so a call draws the same rows for both
    fn = pytensor.function(values, [rows, lean, *grads[0], *grads[1]])
    shapes = {name: np.shape(v) for name, v in model.initial_point().items()}
    rng = np.random.default_rng(4)
    for scale in (0.5, 30.0):  # ordinary and saturated logits (|f| up to ~80)
        out = fn(**{v.name: rng.normal(0, scale, shapes[v.name]) for v in values})
        k = len(values)
        assert np.isfinite(out[1]).all()
        np.testing.assert_allclose(out[1], out[0], rtol=1e-10, atol=1e-10)
        for g_pymc, g_lean in zip(out[2:2 + k], out[2 + k:]):
            np.testing.assert_allclose(g_lean, g_pymc, rtol=1e-8, atol=1e-10)


def _local_estimates(built, flat, layout, family, params, eps, features_first):
    """One local-reparameterisation -ELBO estimate and gradient per row of ``eps`` (draws, noise)."""
    from bnn_ppl.array_ops import jaxify
    from bnn_ppl.inference.engines.local import local_logp, local_theta

    xp = jax_ops()
    local = local_logp(built, flat, layout, jaxify, features_first=features_first)
    X, y = jnp.asarray(flat.X), jnp.asarray(flat.y_data)
    prior_fn = jaxify(inputs=[flat.prior_scale], outputs=[flat.gaussian_mu, flat.gaussian_sigma])
    gaussian = (flat.gaussian_mask, *prior_fn(jnp.asarray(1.0)))
    elbo = bp.ELBO(kl="closed_form", local_reparameterization=True)

    def one(q, e):
        theta, noise = local_theta(family, xp, q, local, e)
        rest, rows = local.fn(theta, q["mu"], family.marginal_var(xp, q), noise, X, y, jnp.asarray(1.0))
        return elbo.neg_elbo(xp, family, q, q["mu"][None], rows.sum(), rest, gaussian)

    noise = eps[:, : local.other.size + local.n_local]
    return jax.vmap(jax.value_and_grad(one), in_axes=(None, 0))(params, noise), local


@pytest.mark.parametrize(("likelihood", "features_first"),
                         [("bernoulli", True), ("bernoulli", False), ("normal", False), ("categorical", True)])
def test_local_reparameterization_has_the_weight_draws_expected_loss_and_gradient(data, likelihood, features_first):
    """Drawing every row's pre-activations (two hidden layers) in place of the weights keeps the
    expected -ELBO and its gradient (within 4-5 standard errors, 4,000 draws each) and lowers the
    loss's spread; a Normal likelihood's sigma (not a layer parameter) is still drawn from q."""
    X, y = data
    if likelihood == "normal":
        spec = bp.Network([bp.Dense(3), bp.Dense(3), bp.Dense(1, "identity")], bp.NormalLikelihood(), prior=bp.FanInNormal())
        y = X[:, 0] - 0.5 * X[:, 1]
    elif likelihood == "categorical":  # 3 classes: 40 x (3 + 3 + 3) pre-activations, as many as 2-3-3-1's + 80
        spec = bp.Network([bp.Dense(3), bp.Dense(3), bp.Dense(3, "identity")], bp.Categorical(3), prior=bp.FanInNormal())
        y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5).astype(int)
    else:
        spec = bp.Network([bp.Dense(3), bp.Dense(3), bp.Dense(1, "identity")], bp.Bernoulli(), prior=bp.Normal(1.0))
    built = bp.build_model(spec, X, y)
    family = resolve_family("advi")
    flat, fn, prior_fn, params, layout = _setup(built, family, seed=5)
    draws = 4000
    (local_values, local_grads), local = _local_estimates(
        built, flat, layout, family, params, jax.random.normal(jax.random.key(7), (draws, 40 * 9 + flat.size)),
        features_first)
    assert local.n_local == 40 * (3 + 3 + (3 if likelihood == "categorical" else 1))
    assert local.other.size == (1 if likelihood == "normal" else 0)  # the likelihood's sigma
    eps = jax.random.normal(jax.random.key(8), (draws, flat.size))
    values, grads = _estimates(flat, fn, prior_fn, family, params, bp.ELBO(kl="closed_form"), eps)
    a, b = np.asarray(local_values, dtype=float), np.asarray(values, dtype=float)
    assert abs(a.mean() - b.mean()) < 4 * np.sqrt((a.var() + b.var()) / draws), (a.mean(), b.mean())
    assert a.std() < 0.9 * b.std()
    for name in ("mu", "rho"):
        ga, gb = np.asarray(local_grads[name], dtype=float), np.asarray(grads[name], dtype=float)
        se = np.sqrt((ga.var(axis=0) + gb.var(axis=0)) / draws) + 1e-9
        assert np.all(np.abs(ga.mean(axis=0) - gb.mean(axis=0)) < 5 * se + 1e-5), name


def test_local_reparameterization_fits_ensembles_minibatches_and_round_trips(data, tmp_path):
    X, _ = data
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)
    spec = bp.Network([bp.Dense(4), bp.Dense(1, "identity")], bp.Bernoulli(), prior=bp.Normal(1.0))
    elbo = bp.ELBO(kl="closed_form", local_reparameterization=True)
    full = bp.fit(bp.build_model(spec, X, y), 2000, method="advi", elbo=elbo, ensemble=2, random_seed=0,
                  progressbar=False)
    base = bp.fit(bp.build_model(spec, X, y), 2000, method="advi", elbo=bp.ELBO(kl="closed_form"), ensemble=2,
                  random_seed=0, progressbar=False)
    assert full.method == "advi" and full.elbo == elbo and np.isfinite(full.losses).all()
    # the same objective: the fitted -ELBO within a nat or two of the weight-sampling fit's
    assert abs(full.losses[-500:].mean() - base.losses[-500:].mean()) < 2.0
    assert full.evaluate(X, y).accuracy > 0.85
    batched = bp.fit(bp.build_model(spec, X, y, batch_size=16), 1000, method="advi", elbo=elbo, random_seed=1,
                     progressbar=False)
    assert np.isfinite(batched.losses).all() and batched.losses[-200:].mean() < batched.losses[:200].mean()
    loaded = bp.load(full.save(tmp_path / "local.bnn"))
    assert loaded.elbo == elbo


def test_local_reparameterization_refuses_what_it_cannot_fit_naming_the_fix(data):
    X, y = data
    elbo = bp.ELBO(kl="closed_form", local_reparameterization=True)
    dense = bp.build_model(bp.Network([bp.Dense(3), bp.Dense(1, "identity")], bp.Bernoulli()), X, y)
    with pytest.raises(ParameterError, match=r"runs on the JAX engine: use engine='jax'"):
        bp.fit(dense, 10, method="advi", engine="numba", elbo=elbo, progressbar=False)
    with pytest.raises(ParameterError, match=r"needs a mean-field q \(method='advi'\).*fullrank_advi"):
        bp.fit(dense, 10, method="fullrank_advi", elbo=elbo, progressbar=False)
    laplace = bp.build_model(bp.Network([bp.Dense(3), bp.Dense(1, "identity")], bp.Bernoulli(),
                                        prior=bp.Laplace(0.5)), X, y)
    with pytest.raises(ParameterError, match=r"'dense_0_w' has Laplace"):
        bp.fit(laplace, 10, method="advi", elbo=elbo, progressbar=False)
    images = np.random.default_rng(0).normal(size=(8, 1, 4, 4))
    conv = bp.build_model(bp.Network([bp.Conv2D(2, 3), bp.Flatten(), bp.Dense(1, "identity")], bp.Bernoulli(),
                                     input_shape=(1, 4, 4)), images, np.arange(8) % 2)
    with pytest.raises(ParameterError, match=r"layer 'conv_0' is a Conv2D, whose outputs share parameters"):
        bp.fit(conv, 10, method="advi", elbo=elbo, progressbar=False)
    with pytest.raises(ParameterError, match=r"use ELBO\(kl='closed_form', gradient='reparameterization'"):
        bp.ELBO(local_reparameterization=True)
    with pytest.raises(ParameterError, match="must be True or False"):
        bp.ELBO(kl="closed_form", local_reparameterization="yes")

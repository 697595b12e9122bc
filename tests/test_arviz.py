"""ArviZ export: DataTree groups and dims, values against the fit, summary and plots draw."""

from __future__ import annotations

import arviz as az
import numpy as np
import pytest
import xarray as xr

import bnn_ppl as bp
from bnn_ppl.spec import Bernoulli, Categorical, Dense, Network, Normal, NormalLikelihood

DRAWS = 400


def _binary_data(n=60, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 2))
    return X, (X[:, 0] + X[:, 1] > 0).astype(int)


@pytest.fixture(scope="module")
def binary_fit():
    X, y = _binary_data()
    spec = Network([Dense(3), Dense(1, "identity")], Bernoulli(), prior=Normal(1.0))
    built = bp.build_model(spec, X, y, feature_names=["u", "v"])
    return bp.fit(built, n=1500, method="advi", random_seed=0, progressbar=False)


@pytest.fixture(scope="module")
def binary_tree(binary_fit):
    return binary_fit.to_datatree(draws=DRAWS, random_seed=0)


@pytest.fixture(scope="module")
def categorical_fit(tiny_classification):
    X, y = tiny_classification
    spec = Network([Dense(4), Dense(3, "identity")], Categorical(3))
    return bp.fit(bp.build_model(spec, X, y, class_names=["lo", "mid", "hi"]), n=1500, method="advi", random_seed=1, progressbar=False)


def _drawn_artists(pc) -> int:
    fig = pc.viz["figure"].item()
    assert fig.axes, "the plot has no axes"
    return sum(len(ax.lines) + len(ax.collections) + len(ax.patches) for ax in fig.axes)


# ---------------------------------------------------------------- structure
def test_groups_and_named_dims(binary_tree):
    dt = binary_tree
    assert isinstance(dt, xr.DataTree)
    assert {"posterior", "posterior_predictive", "observed_data", "constant_data"} <= set(dt.children)
    assert "sample_stats" not in dt.children
    post = dt.posterior
    assert set(post.data_vars) >= {"dense_0_w", "dense_0_b", "dense_1_w", "dense_1_b"}
    assert post["dense_0_w"].dims == ("chain", "draw", "dense_0_in", "dense_0_out")
    assert post["dense_1_b"].dims == ("chain", "draw", "dense_1_out")
    assert post["dense_0_w"].shape == (1, DRAWS, 2, 3)
    assert list(post["dense_0_w"].coords["dense_0_in"].values) == ["u", "v"]
    assert dt.posterior_predictive["y_obs"].shape == (1, DRAWS, 60)
    assert dt.constant_data["X"].dims == ("obs", "dense_0_in")
    X, y = _binary_data()
    np.testing.assert_array_equal(dt.observed_data["y_obs"].values, y)
    np.testing.assert_allclose(dt.constant_data["X"].values, X)


def test_held_out_and_prediction_groups(binary_fit):
    X_new, y_new = _binary_data(25, seed=3)
    held = binary_fit.to_datatree(draws=50, X=X_new, y=y_new, random_seed=1)
    assert held.posterior_predictive["y_obs"].shape == (1, 50, 25)
    np.testing.assert_array_equal(held.observed_data["y_obs"].values, y_new)
    np.testing.assert_allclose(held.constant_data["X"].values, X_new)
    pred = binary_fit.to_datatree(draws=50, X=X_new, random_seed=1)
    assert "predictions" in pred.children and "posterior_predictive" not in pred.children
    assert pred.predictions["y_obs"].shape == (1, 50, 25)
    np.testing.assert_allclose(pred.predictions_constant_data["X"].values, X_new)


def test_same_seed_same_tree(binary_fit, binary_tree):
    again = binary_fit.to_datatree(draws=DRAWS, random_seed=0)
    np.testing.assert_array_equal(again.posterior["dense_0_w"].values, binary_tree.posterior["dense_0_w"].values)
    np.testing.assert_array_equal(again.posterior_predictive["y_obs"].values, binary_tree.posterior_predictive["y_obs"].values)


# ---------------------------------------------------------------- values
def test_posterior_matches_the_approximation(binary_fit, binary_tree):
    group = binary_fit.approx.groups[0]
    params = binary_fit.params()
    sl, shape = group.ordering["dense_0_w"][1:3]
    mu, sigma = params["mu"][sl].reshape(shape), np.logaddexp(0, params["rho"][sl]).reshape(shape)
    draws = binary_tree.posterior["dense_0_w"].values[0]
    assert np.all(np.abs(draws.mean(0) - mu) < 5 * sigma / np.sqrt(DRAWS))
    np.testing.assert_allclose(draws.std(0), sigma, rtol=0.25)


def test_posterior_predictive_matches_the_predictor(binary_fit, binary_tree):
    X, _ = _binary_data()
    p = binary_fit.predictor().sample(X, draws=4000, random_seed=5).mean(0)
    freq = binary_tree.posterior_predictive["y_obs"].values[0].mean(0)
    se = np.sqrt(p * (1 - p) / DRAWS) + 1e-3
    assert np.max(np.abs(freq - p) / se) < 4.5


def test_categorical_outcomes_follow_the_class_probabilities(categorical_fit, tiny_classification):
    X, _ = tiny_classification
    dt = categorical_fit.to_datatree(draws=DRAWS, random_seed=2)
    y = dt.posterior_predictive["y_obs"].values[0]
    assert set(np.unique(y)) <= {0, 1, 2}
    assert list(dt.posterior["dense_1_w"].coords["dense_1_out"].values) == ["lo", "mid", "hi"]
    proba = categorical_fit.predictor().predict_proba(X, draws=2000, random_seed=3)
    freq = np.stack([(y == k).mean(0) for k in range(3)], axis=-1)
    se = np.sqrt(proba * (1 - proba) / DRAWS) + 2e-3
    assert np.max(np.abs(freq - proba) / se) < 5.0


def test_regression_outcomes_have_the_total_predictive_variance():
    rng = np.random.default_rng(4)
    X = rng.uniform(-2, 2, size=(40, 1))
    y = 0.8 * X[:, 0] + 0.3 * rng.normal(size=40)
    spec = Network([Dense(3), Dense(1, "identity")], NormalLikelihood(1.0), prior=Normal(1.0))
    result = bp.fit(bp.build_model(spec, X, y), n=2000, method="advi", random_seed=4, progressbar=False)
    dt = result.to_datatree(draws=2000, random_seed=5)
    assert "sigma" in dt.posterior.data_vars
    sim = dt.posterior_predictive["y_obs"].values[0]
    u = result.predictor().uncertainty(X, draws=4000, random_seed=6)
    np.testing.assert_allclose(sim.mean(0), u.mean, atol=4 * np.sqrt(u.total_var / 2000).max())
    np.testing.assert_allclose(sim.var(0).mean(), u.total_var.mean(), rtol=0.1)


# ---------------------------------------------------------------- ArviZ tools
def test_az_summary(binary_fit, binary_tree):
    summary = az.summary(binary_tree, var_names=["dense_0_w", "dense_1_b"])
    assert len(summary) == 2 * 3 + 1
    assert {"mean", "sd"} <= set(summary.columns)
    mu = binary_fit.params()["mu"][binary_fit.approx.groups[0].ordering["dense_1_b"][1]]
    assert float(summary.loc["dense_1_b[0]", "mean"]) == pytest.approx(float(mu[0]), abs=0.15)


def test_plot_trace_dist_and_forest_draw(binary_tree, tmp_path):
    pc = az.plot_trace_dist(binary_tree, var_names=["dense_0_w"])
    assert _drawn_artists(pc) >= 2 * 6  # one line per weight in each of the dist and trace columns
    pc.savefig(tmp_path / "trace.png")
    assert (tmp_path / "trace.png").stat().st_size > 1000
    pc = az.plot_forest(binary_tree, var_names=["dense_0_w", "dense_0_b"])
    assert _drawn_artists(pc) > 0


def test_plot_ppc_pava_draws_for_binary(binary_tree):
    pc = az.plot_ppc_pava(binary_tree)
    assert _drawn_artists(pc) > 0


@pytest.mark.filterwarnings("ignore:Found chain dimension:UserWarning")  # raised inside arviz_stats
def test_plot_ppc_rootogram_draws_for_categorical(categorical_fit):
    dt = categorical_fit.to_datatree(draws=100, random_seed=7)
    pc = az.plot_ppc_rootogram(dt)
    assert _drawn_artists(pc) > 0


def test_tree_saves_to_netcdf_and_reloads(binary_tree, tmp_path):
    path = tmp_path / "fit.nc"
    binary_tree.to_netcdf(path)
    back = xr.open_datatree(path)
    np.testing.assert_allclose(back.posterior["dense_0_w"].values, binary_tree.posterior["dense_0_w"].values)
    assert back.posterior["dense_0_w"].dims == ("chain", "draw", "dense_0_in", "dense_0_out")
    back.close()


@pytest.mark.parametrize("draws", [0, -1, 2.5, True, "100"])
def test_bad_draws_raise_parameter_error(binary_fit, draws):
    with pytest.raises(bp.ParameterError) as info:
        binary_fit.to_datatree(draws=draws)
    expected = f"The 'draws' parameter of to_datatree must be a positive integer such as 500. Got {draws!r} instead."
    assert str(info.value) == expected


def test_numpy_integer_draws_are_accepted(binary_fit):
    assert binary_fit.to_datatree(draws=np.int64(5), random_seed=0)["posterior"].sizes["draw"] == 5


def test_y_without_x_is_refused_not_ignored(binary_fit):
    with pytest.raises(bp.ParameterError, match="to_datatree got y without X"):
        binary_fit.to_datatree(draws=5, y=np.zeros(3))


@pytest.mark.parametrize("which", ["binary", "categorical", "regression"])
def test_log_likelihood_group_feeds_loo(which, binary_fit, categorical_fit, tiny_classification):
    from scipy.special import logsumexp

    if which == "regression":
        rng = np.random.default_rng(2)
        X = rng.normal(size=(40, 1))
        y = X[:, 0] + 0.2 * rng.normal(size=40)
        spec = Network([Dense(3), Dense(1, "identity")], NormalLikelihood())
        fit = bp.fit(bp.build_model(spec, X, y), n=1500, method="advi", random_seed=0, progressbar=False)
    else:
        fit = binary_fit if which == "binary" else categorical_fit
        X, y = _binary_data() if which == "binary" else tiny_classification
    dt = fit.to_datatree(draws=DRAWS, random_seed=3, log_likelihood=True)
    ll = dt.log_likelihood["y_obs"]
    assert dict(ll.sizes) == {"chain": 1, "draw": DRAWS, "obs": len(y)} and np.all(np.isfinite(ll.values))
    if which != "regression":
        assert np.all(ll.values <= 0)  # log-probabilities of labels
    # the in-sample log predictive density of those draws is the evaluate() score (Monte Carlo error apart)
    lpd = float(np.mean(logsumexp(ll.values[0], axis=0) - np.log(DRAWS)))
    assert lpd == pytest.approx(fit.evaluate(X, y, draws=4000).lpd, abs=0.03)
    loo = az.loo(dt)  # ArviZ reads the group as it reads PyMC's
    assert loo.elpd < lpd * len(y) + 1e-9  # leaving a row out never scores it better than keeping it
    held = fit.to_datatree(draws=50, X=X[:7], y=y[:7], random_seed=0, log_likelihood=True)
    assert held.log_likelihood["y_obs"].sizes["obs"] == 7


def test_log_likelihood_needs_targets(binary_fit):
    X, _ = _binary_data()
    with pytest.raises(bp.ParameterError, match="log_likelihood=True. scores observed targets"):
        binary_fit.to_datatree(draws=5, X=X, log_likelihood=True)
    with pytest.raises(bp.ParameterError, match="'log_likelihood' parameter of to_datatree must be True or False"):
        binary_fit.to_datatree(draws=5, log_likelihood="yes")

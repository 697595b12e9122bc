"""Plots render with Agg and hold the expected artists and numbers."""

from __future__ import annotations

import arviz_base as azb
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import PathCollection  # noqa: E402
from matplotlib.contour import ContourSet  # noqa: E402

import bnn_ppl as bp  # noqa: E402
from bnn_ppl.errors import DataError  # noqa: E402
from bnn_ppl.plots import (  # noqa: E402
    UNCERTAINTY_MEASURES,
    expected_calibration_error,
    plot_decision_surface,
    plot_loss,
    plot_reliability,
    plot_uncertainty_surface,
    plot_weights,
    reliability_table,
)

GRID, DRAWS = 30, 60


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def binary_fit(moons):
    X_train, _, y_train, _ = moons
    spec = bp.load_spec("models/moons.toml")
    return bp.fit(bp.build_model(spec, X_train[:200], y_train[:200]), n=1500, random_seed=1, progressbar=False)


@pytest.fixture(scope="module")
def three_class():
    rng = np.random.default_rng(3)
    centres = np.array([[-2.0, 0.0], [2.0, 0.0], [0.0, 2.5]])
    y = np.repeat(np.arange(3), 30)
    X = centres[y] + rng.normal(scale=0.6, size=(90, 2))
    spec = bp.Network([bp.Dense(4), bp.Dense(3, "identity")], bp.Categorical(3))
    return X, y, bp.fit(bp.build_model(spec, X, y), n=800, random_seed=2, progressbar=False)


def _filled_contours(ax):
    return [c for c in ax.collections if isinstance(c, ContourSet) and c.filled]


def _scatter_points(ax) -> int:
    return sum(len(c.get_offsets()) for c in ax.collections if isinstance(c, PathCollection))


def _colorbar_label(ax) -> str:
    bars = [a for a in ax.figure.axes if a is not ax]
    assert len(bars) == 1, "expected one colorbar axes"
    return bars[0].get_ylabel()


# ---------------------------------------------------------------- loss
def test_plot_loss_lines_are_the_losses_and_their_moving_average(binary_fit):
    fig, ax = plt.subplots()
    assert plot_loss(binary_fit, ax=ax, smooth=100) is ax
    raw, smooth = ax.lines
    np.testing.assert_array_equal(raw.get_ydata(), binary_fit.losses)
    np.testing.assert_array_equal(raw.get_xdata(), np.arange(1, 1501))
    expected = np.convolve(binary_fit.losses, np.ones(100) / 100, mode="valid")
    np.testing.assert_allclose(smooth.get_ydata(), expected, rtol=1e-10)
    assert smooth.get_xdata()[0] == 100 and smooth.get_xdata()[-1] == 1500
    assert ax.get_xlabel() == "step" and "ELBO" in ax.get_ylabel()


def test_plot_loss_auto_window_none_and_errors():
    losses = np.linspace(100.0, 1.0, 500)
    ax = plot_loss(losses)
    assert len(ax.lines) == 2 and len(ax.lines[1].get_ydata()) == 500 - 10 + 1  # auto: n // 50
    assert len(plot_loss(losses, smooth=None).lines) == 1
    assert plot_loss(losses, logy=True).get_yscale() == "log"
    with pytest.raises(DataError, match="'smooth' parameter of plot_loss .* Got -3"):
        plot_loss(losses, smooth=-3)
    with pytest.raises(DataError, match="empty history"):
        plot_loss(np.array([]))
    with pytest.raises(DataError, match=r"1-D history of loss values. Got shape \(4, 50\)"):
        plot_loss(np.ones((4, 50)))  # an ensemble's member_losses are not one curve
    with pytest.raises(DataError, match="1-D history"):
        plot_loss(None)
    with pytest.raises(DataError, match="FitResult or a 1-D history"):
        plot_loss(["a", "b"])
    with pytest.raises(DataError, match="no finite loss"):
        plot_loss(np.full(3, np.nan))


# ---------------------------------------------------------------- surfaces
def test_binary_decision_surface_artists(binary_fit, moons):
    _, X_test, _, y_test = moons
    X, y = X_test[:120], y_test[:120]
    fig, ax = plt.subplots()
    assert plot_decision_surface(binary_fit, X, y, ax=ax, grid=GRID, draws=DRAWS, random_seed=0) is ax
    (filled,) = _filled_contours(ax)
    np.testing.assert_allclose(filled.levels, np.linspace(0, 1, 11))
    boundary = [c for c in ax.collections if isinstance(c, ContourSet) and not c.filled]
    assert len(boundary) == 1 and list(boundary[0].levels) == [0.5]
    assert _scatter_points(ax) == 120
    assert "P(y=1)" in _colorbar_label(ax)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["class 0", "class 1"]
    # the surface is the predictor's mean P(y=1) on the same grid and seed
    proba = binary_fit.predictor().uncertainty(_grid_points(X, GRID), draws=DRAWS, random_seed=0).proba[:, 1]
    assert filled.zmin == pytest.approx(proba.min()) and filled.zmax == pytest.approx(proba.max())
    assert proba.min() < 0.15 and proba.max() > 0.85  # a fitted moons net separates the classes


def _grid_points(X, grid, padding=0.5):
    lo, hi = X.min(0) - padding, X.max(0) + padding
    xx, yy = np.meshgrid(np.linspace(lo[0], hi[0], grid), np.linspace(lo[1], hi[1], grid))
    return np.column_stack([xx.ravel(), yy.ravel()])


def test_multiclass_decision_surface_artists(three_class):
    X, y, result = three_class
    ax = plot_decision_surface(result.predictor(), X, y, grid=GRID, draws=DRAWS, random_seed=0)
    (filled,) = _filled_contours(ax)
    np.testing.assert_allclose(filled.levels, [-0.5, 0.5, 1.5, 2.5])
    assert _colorbar_label(ax) == "most probable class"
    bar_ax = [a for a in ax.figure.axes if a is not ax][0]
    np.testing.assert_allclose(bar_ax.get_yticks(), [0, 1, 2])
    assert sum(isinstance(c, PathCollection) for c in ax.collections) == 3  # one scatter per class
    assert _scatter_points(ax) == 90
    # every class owns part of the plane for well separated blobs
    best = result.predictor().predict(_grid_points(X, GRID), draws=DRAWS, random_seed=0)
    assert set(np.unique(best)) == {0, 1, 2}


@pytest.mark.parametrize("measure", ["std", "entropy", "expected_entropy", "mutual_information"])
def test_uncertainty_surface_values_and_colorbar(binary_fit, moons, measure):
    _, X_test, _, y_test = moons
    X = X_test[:80]
    ax = plot_uncertainty_surface(binary_fit, X, y_test[:80], measure=measure, grid=GRID, draws=DRAWS, random_seed=0)
    (filled,) = _filled_contours(ax)
    assert _colorbar_label(ax) == UNCERTAINTY_MEASURES.get(measure).label
    assert _scatter_points(ax) == 80
    s = binary_fit.predictor().uncertainty(_grid_points(X, GRID), draws=DRAWS, random_seed=0)
    values = {"std": s.std[:, 1], "entropy": s.entropy, "expected_entropy": s.expected_entropy,
              "mutual_information": s.mutual_information}[measure]
    assert filled.zmin == pytest.approx(values.min()) and filled.zmax == pytest.approx(values.max())
    assert 0.0 <= values.min() and values.max() <= np.log(2) + 1e-9


def test_uncertainty_surface_errors(binary_fit, moons):
    X = moons[1][:20]
    y = moons[3][:20]
    figures = plt.get_fignums()
    with pytest.raises(DataError, match=r"y must hold the class indices 0..1 the model predicts. Got labels \[5, 6\]"):
        plot_decision_surface(binary_fit, X, y + 5, grid=GRID, draws=DRAWS)
    assert plt.get_fignums() == figures  # refused before anything is computed or drawn
    with pytest.raises(DataError, match="class indices"):
        plot_decision_surface(binary_fit, X, y + 0.5, grid=GRID, draws=DRAWS)
    with pytest.raises(DataError, match="'padding' parameter must be a finite number >= 0. Got -10"):
        plot_decision_surface(binary_fit, X, y, grid=GRID, draws=DRAWS, padding=-10)
    with pytest.raises(DataError, match=r"'measure' field must be one of \[.*'mutual_information'.*\]. Got 'variance'"):
        plot_uncertainty_surface(binary_fit, X, measure="variance")
    with pytest.raises(DataError, match="not defined for a classifier. Use one of"):
        plot_uncertainty_surface(binary_fit, X, measure="epistemic_std")
    with pytest.raises(DataError, match=r"exactly 2 features. Got X of shape \(20, 3\)"):
        plot_decision_surface(binary_fit, np.c_[X, X[:, 0]])
    with pytest.raises(DataError, match="Expected a FitResult or a Predictor"):
        plot_decision_surface("model.toml", X)
    with pytest.raises(DataError, match="X has 20 rows but y has 3"):
        plot_decision_surface(binary_fit, X, [0, 1, 0], grid=5, draws=5)


# ---------------------------------------------------------------- calibration
def test_ece_matches_hand_computation():
    y = np.array([1, 0, 1, 1, 0, 0])
    p1 = np.array([0.95, 0.1, 0.62, 0.3, 0.55, 0.2])
    # top-label confidences 0.95, 0.9, 0.62, 0.7, 0.55, 0.8; correct: T T T F F T
    # 5 bins of width 0.2: bin 2 [0.4, 0.6): {0.55 F}; bin 3 [0.6, 0.8): {0.62 T, 0.7 F};
    # bin 4 [0.8, 1]: {0.95 T, 0.9 T, 0.8 T}
    hand = (1 / 6) * abs(0 - 0.55) + (2 / 6) * abs(0.5 - 0.66) + (3 / 6) * abs(1 - (0.95 + 0.9 + 0.8) / 3)
    assert expected_calibration_error(y, p1, n_bins=5) == pytest.approx(hand)
    assert expected_calibration_error(y, np.c_[1 - p1, p1], n_bins=5) == pytest.approx(hand)
    table = reliability_table(y, p1, n_bins=5)
    np.testing.assert_array_equal(table.counts, [0, 0, 1, 2, 3])


def test_ece_small_when_calibrated_large_when_overconfident():
    rng = np.random.default_rng(0)
    p = rng.uniform(size=20_000)
    y = (rng.uniform(size=p.size) < p).astype(int)
    assert expected_calibration_error(y, p) < 0.02
    overconfident = np.where(p > 0.5, 0.99, 0.01)
    assert expected_calibration_error(y, overconfident) > 0.2


def test_reliability_diagram_bars_and_title():
    rng = np.random.default_rng(1)
    proba = rng.dirichlet(np.ones(3), size=400)
    y = np.array([rng.choice(3, p=row) for row in proba])
    fig, ax = plt.subplots()
    assert plot_reliability(y, proba, ax=ax, n_bins=8) is ax
    table = reliability_table(y, proba, n_bins=8)
    filled = table.counts > 0
    assert len(ax.patches) == filled.sum()
    np.testing.assert_allclose([b.get_height() for b in ax.patches], table.accuracy[filled])
    assert f"ECE = {table.ece:.3f}" in ax.get_title() and "400 predictions" in ax.get_title()
    np.testing.assert_allclose(ax.lines[0].get_xydata(), [[0, 0], [1, 1]])  # the diagonal


def test_reliability_errors():
    with pytest.raises(DataError, match=r"labels must lie in 0..1 .* Got labels from 0 to 2"):
        expected_calibration_error([0, 2], [0.3, 0.8])
    with pytest.raises(DataError, match="y_true has 2 rows but proba has 3"):
        expected_calibration_error([0, 1], [0.3, 0.8, 0.1])
    with pytest.raises(DataError, match=r"probabilities in \[0, 1\]"):
        expected_calibration_error([0, 1], [0.3, 1.8])
    with pytest.raises(DataError, match="'n_bins' parameter must be an integer from 1 to 10,000 .* Got 0"):
        expected_calibration_error([0, 1], [0.3, 0.8], n_bins=0)
    with pytest.raises(DataError, match="'n_bins' parameter must be an integer from 1 to 10,000"):
        expected_calibration_error([0, 1], [0.3, 0.8], n_bins=10**9)  # would allocate gigabytes
    with pytest.raises(DataError, match="row 0 sums to 1.8"):
        expected_calibration_error([0, 1], [[0.9, 0.9], [0.5, 0.5]])
    with pytest.raises(DataError, match="integer class labels 0..K-1. Got dtype <U1"):
        expected_calibration_error(["a", "b"], [0.3, 0.8])


# ---------------------------------------------------------------- weights
@pytest.fixture(scope="module")
def posterior_tree():
    rng = np.random.default_rng(0)
    return azb.from_dict(
        {"posterior": {
            "dense_0_w": rng.normal(size=(1, 50, 2, 3)),
            "dense_0_b": rng.normal(size=(1, 50, 3)),
            "dense_1_w": rng.normal(size=(1, 50, 3, 1)),
            "dense_1_w_raw": rng.normal(size=(1, 50, 3, 1)),
            "dense_1_w_scale": np.abs(rng.normal(size=(1, 50))),
        }},
        dims={"dense_0_w": ["dense_0_in", "dense_0_out"], "dense_0_b": ["dense_0_out"],
              "dense_1_w": ["dense_1_in", "dense_1_out"], "dense_1_w_raw": ["dense_1_in", "dense_1_out"]},
    )


def test_plot_weights_trace_from_a_datatree(posterior_tree):
    pc = plot_weights(posterior_tree, "trace")
    # the non-centred helper is left out; the hierarchical scale is kept
    assert set(pc.viz["trace"].data_vars) == {"dense_0_w", "dense_0_b", "dense_1_w", "dense_1_w_scale"}
    assert len(pc.viz["figure"].item().axes) == 2 * 4  # density + trace panel per variable
    line = pc.viz["trace"]["dense_0_w"].sel(chain=0, dense_0_in=1, dense_0_out=2).item()
    np.testing.assert_allclose(line.get_ydata(), posterior_tree["posterior"]["dense_0_w"].values[0, :, 1, 2])


def test_plot_weights_forest_of_a_fit_uses_layer_dims(binary_fit):
    pc = plot_weights(binary_fit, "forest", layers=["dense_2"], draws=100, random_seed=0)
    assert set(pc.viz["twig"].data_vars) == {"dense_2_w", "dense_2_b"}
    assert dict(pc.viz["twig"]["dense_2_w"].sizes) == {"chain": 1, "dense_2_in": 5, "dense_2_out": 1}
    assert "dense_2_in_label" in pc.viz.children
    with pytest.raises(bp.ParameterError, match="'draws' parameter of plot_weights must be a positive integer"):
        plot_weights(binary_fit, "forest", draws=0)
    with pytest.raises(bp.ParameterError, match="'random_seed' parameter of plot_weights"):
        plot_weights(binary_fit, "forest", draws=5, random_seed=-1)
    with pytest.raises(DataError, match=r"coords asks for values the dims lack .*'dense_2_out': \[0\]"):
        plot_weights(binary_fit, "forest", layers=["dense_2"], draws=5, coords={"dense_2_out": [5]})


def test_plot_weights_errors(posterior_tree):
    with pytest.raises(DataError, match=r"unknown layers \['dense_7'\]. Choose from \['dense_0', 'dense_1'\]"):
        plot_weights(posterior_tree, layers=["dense_7"])
    with pytest.raises(DataError, match="'kind' parameter of plot_weights must be one of"):
        plot_weights(posterior_tree, kind="pair")
    with pytest.raises(DataError, match=r"would draw 9 parameters .* more than max_values=5"):
        plot_weights(posterior_tree, layers=["dense_0"], max_values=5)
    pc = plot_weights(posterior_tree, "forest", layers=["dense_0"], coords={"dense_0_out": [0]}, max_values=5)
    assert dict(pc.viz["twig"]["dense_0_w"].sizes) == {"chain": 1, "dense_0_in": 2, "dense_0_out": 1}

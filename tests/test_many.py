"""fit_many: seeds x grid x folds in one compiled loop; each member is its setting fitted alone."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.model_selection import check_cv

import bnn_ppl as bp
from bnn_ppl.errors import ParameterError

SPEC = bp.Network([bp.Dense(3), bp.Dense(1, "identity")], bp.Bernoulli())


def _data(n=60, seed=0):
    X = np.random.default_rng(seed).normal(size=(n, 2))
    return X, (X[:, 0] - 0.5 * X[:, 1] > 0).astype(int)


@pytest.fixture(scope="module")
def cv_many():
    X, y = _data()
    many = bp.fit_many(SPEC, X, y, grid={"prior_sigma": [0.5, 2.0], "learning_rate": [0.01, 1e4]}, seeds=[0, 1],
                       folds=3, n=400, progressbar=False)
    return X, y, many


def test_every_member_is_its_setting_fitted_alone(cv_many):
    X, y, many = cv_many
    splits = list(check_cv(3, y, classifier=True).split(X, y))
    for k in (0, 4, 13):  # different prior widths, seeds and folds
        setting, result = many.settings[k], many.results[k]
        train = np.sort(splits[setting["fold"]][0])
        alone = bp.fit(bp.build_model(SPEC.with_prior_scale(setting["prior_sigma"]), X[train], y[train]), n=400,
                       random_seed=setting["seed"], learning_rate=setting["learning_rate"], progressbar=False)
        for name, value in alone.params().items():
            np.testing.assert_allclose(result.params()[name], value, atol=1e-10)
        np.testing.assert_allclose(result.losses, alone.losses, rtol=1e-7)
        assert result.spec.prior == bp.Normal(setting["prior_sigma"]) and result.built.n_obs == train.size
        np.testing.assert_array_equal(result.predictor().predict(X[:7], random_seed=1),
                                      alone.predictor().predict(X[:7], random_seed=1))


def test_the_table_scores_each_fold_and_marks_diverged_members(cv_many):
    _, _, many = cv_many
    table = many.table
    assert len(table) == len(many.results) == 2 * 2 * 2 * 3
    assert list(table.columns) == ["prior_sigma", "learning_rate", "seed", "fold", "neg_elbo", "diverged", "test_lpd",
                                   "test_nll", "accuracy", "ece"]
    wild = table["learning_rate"] == 1e4
    assert table.loc[wild, "diverged"].all() and table.loc[wild, "test_nll"].isna().all()
    calm = table[~wild]
    assert not calm["diverged"].any() and calm["accuracy"].between(0.5, 1).all()
    np.testing.assert_allclose(calm["test_nll"], -calm["test_lpd"])
    summary = many.summary("test_nll")
    assert len(summary) == 2 and (summary["count"] == 6).all()  # diverged settings left out
    best = many.best("test_nll")
    assert best["learning_rate"] == 0.01 and best["prior_sigma"] == summary.loc[summary["mean"].idxmin(), "prior_sigma"]
    with pytest.raises(ParameterError, match="'metric' parameter must be one of"):
        many.best("rmse")


def test_minibatch_regression_with_held_out_rows_and_prior_scale():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(80, 2))
    y = np.sin(X[:, 0]) + 0.1 * rng.normal(size=80)
    spec = bp.Network([bp.Dense(4, prior=bp.Laplace(0.5)), bp.Dense(1, "identity")], bp.NormalLikelihood())
    many = bp.fit_many(spec, X[:60], y[:60], grid={"prior_scale": [0.5, 3.0]}, seeds=[2], n=300, batch_size=20,
                       X_test=X[60:], y_test=y[60:], progressbar=False)
    assert list(many.table.columns) == ["prior_scale", "seed", "neg_elbo", "diverged", "test_lpd", "test_nll", "rmse",
                                        "coverage_90"]
    alone = bp.fit(bp.build_model(spec.with_prior_scale(3.0), X[:60], y[:60], batch_size=20), n=300, random_seed=2,
                   progressbar=False)
    assert alone.spec.layers[0].prior == bp.Laplace(1.5)
    for name, value in alone.params().items():
        np.testing.assert_allclose(many.results[1].params()[name], value, atol=1e-10)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"grid": {"batch_size": [8]}}, "The grid name 'batch_size' is not one fit_many can vary"),
    ({"grid": {"learning_rate": []}}, "The grid entry 'learning_rate' is empty"),
    ({"grid": {"learning_rate": [-1]}}, "must hold positive numbers. Got -1"),
    ({"grid": {"prior_scale": [1], "prior_sigma": [1]}}, "not both"),
    ({"seeds": []}, "'seeds' parameter of fit_many is empty"),
    ({"X_test": np.zeros((3, 2))}, "only one of X_test and y_test"),
    ({"folds": []}, "'folds' parameter of fit_many gave no folds"),
    ({"grid": {name: list(np.linspace(0.1, 1.0, 65536)) for name in ("learning_rate", "lr_floor", "init_sigma",
                                                                     "prior_scale")}},
     "would run 18,446,744,073,709,551,616 fits"),  # 2**64: a numpy product wrapped to 0
    ({"seeds": [0.5]}, "must hold non-negative integers. Got 0.5"),
    ({"seeds": [0, -2]}, "must hold non-negative integers. Got -2"),
    ({"folds": "abc"}, "'folds' parameter of fit_many must be"),
    ({"n": "abc"}, "'n' parameter of fit_many must be a positive integer"),
    ({"folds": [(np.arange(15), np.arange(15, 25))]}, r"Fold 0's test rows hold indices from 15 to 24; X has 20 rows"),
    ({"folds": [(np.ones(19, bool), np.ones(20, bool))]}, r"Fold 0's training mask has shape \(19,\)"),
    ({"folds": [(np.arange(10) + 0.5, np.arange(10, 20))]}, "integer row indices or a boolean mask"),
    ({"grid": {"prior_scale": list(range(1, 101))}, "seeds": range(11)}, "would run 1,100 fits .*MAX_FITS = 1,024"),
])
def test_bad_arguments_are_refused_before_anything_runs(kwargs, message):
    X, y = _data(20)
    with pytest.raises(ParameterError, match=message):
        bp.fit_many(SPEC, X, y, **{"n": 10, "progressbar": False, **kwargs})


def test_boolean_mask_folds_are_the_folds_their_indices_name():
    X, y = _data(30)
    test = np.zeros(30, bool)
    test[::3] = True
    by_mask = bp.fit_many(SPEC, X, y, folds=[(~test, test)], n=50, progressbar=False)
    by_index = bp.fit_many(SPEC, X, y, folds=[(np.flatnonzero(~test), np.flatnonzero(test))], n=50, progressbar=False)
    assert by_mask.table["test_lpd"].tolist() == by_index.table["test_lpd"].tolist()
    # a mask read as indices 0/1 would score rows 0 and 1 only: the scores differ from a fold of those rows
    rows01 = bp.fit_many(SPEC, X, y, folds=[(np.arange(2, 30), np.arange(2))], n=50, progressbar=False)
    assert by_mask.table["test_lpd"].tolist() != rows01.table["test_lpd"].tolist()


def test_prior_sigma_needs_one_kind_and_width_of_weight_prior():
    X, y = _data(20)
    mixed = bp.Network([bp.Dense(3, prior=bp.Laplace(1.0)), bp.Dense(1, "identity")], bp.Bernoulli())
    with pytest.raises(ParameterError, match=r"needs weight priors of one kind and one width.*prior_scale"):
        bp.fit_many(mixed, X, y, grid={"prior_sigma": [1.0]}, n=10, progressbar=False)


def test_classifier_cv_picks_the_best_prior_width_and_refits_with_it(tmp_path):
    X, y = _data(90, seed=3)
    labels = np.where(y == 1, "yes", "no")
    clf = bp.BNNClassifierCV((3,), prior_scales=(0.05, 2.0), cv=3, n_iter=400, random_state=0).fit(X, labels)
    summary = clf.cv_summary_
    assert list(summary["prior_scale"]) == [0.05, 2.0] and (summary["count"] == 3).all()
    assert clf.prior_scale_ == summary.loc[summary["mean"].idxmin(), "prior_scale"] == 2.0
    assert len(clf.cv_results_["test_nll"]) == 6 and set(clf.cv_results_["fold"]) == {0, 1, 2}
    assert clf.result_.spec.prior == bp.Normal(2.0) and clf.result_.built.n_obs == 90
    plain = bp.BNNClassifier((3,), prior=bp.Normal(2.0), n_iter=400, random_state=0).fit(X, labels)
    np.testing.assert_array_equal(clf.predict_proba(X[:9]), plain.predict_proba(X[:9]))
    assert set(clf.predict(X[:9])) <= {"yes", "no"}
    loaded = bp.BNNClassifierCV.load(clf.save(tmp_path / "cv.bnn"))
    assert loaded.prior_scale_ == 2.0 and loaded.get_params()["prior_scales"] == [0.05, 2.0]
    np.testing.assert_array_equal(loaded.predict_proba(X[:9]), clf.predict_proba(X[:9]))
    for scoring in ("auc", "rmse"):  # rmse scores regressors: refused before any fold is fitted
        with pytest.raises(ParameterError, match=r"'scoring' parameter of BNNClassifierCV must be one of \['test_nll', "
                                                 r"'accuracy'\]"):
            bp.BNNClassifierCV((3,), scoring=scoring, n_iter=10).fit(X, labels)
    # numpy arrays are grids too, and are saved as lists
    arrays = bp.BNNClassifierCV((3,), prior_scales=np.array([0.05, 2.0]), learning_rates=np.array([0.01]), cv=3,
                                n_iter=400, random_state=0).fit(X, labels)
    assert arrays.prior_scale_ == 2.0
    assert bp.BNNClassifierCV.load(arrays.save(tmp_path / "arrays.bnn")).get_params()["prior_scales"] == [0.05, 2.0]
    # a scikit-learn splitter is saved by class and parameters, and comes back (others fall back to 5 folds)
    from sklearn.model_selection import KFold

    arrays.set_params(cv=KFold(3, shuffle=True, random_state=4))
    loaded = bp.BNNClassifierCV.load(arrays.save(tmp_path / "kfold.bnn"))
    assert repr(loaded.get_params()["cv"]) == repr(KFold(3, shuffle=True, random_state=4))
    arrays.set_params(cv=[(np.arange(60), np.arange(60, 90))])
    assert bp.BNNClassifierCV.load(arrays.save(tmp_path / "folds.bnn")).get_params()["cv"] is None


def test_when_every_member_diverges_the_table_still_comes_back():
    X, y = _data(20)
    many = bp.fit_many(SPEC, X * 1e3, y, grid={"learning_rate": [1e200, 1e300]}, folds=2, n=30, progressbar=False)
    assert many.table["diverged"].all() and len(many.table) == 4
    assert all(r.stop_reason == "diverged" and r.losses.shape == (30,) for r in many.results)
    assert all(np.isfinite(r.params()["mu"]).all() for r in many.results)  # the last good parameters
    with pytest.raises(ParameterError):
        many.best("test_nll")


def test_a_dataframe_fit_checks_the_held_out_dataframe_columns():
    pd = pytest.importorskip("pandas")
    X, y = _data(20)
    frame = pd.DataFrame(X, columns=["a", "b"])
    with pytest.raises(bp.DataError, match="another order"):
        bp.fit_many(SPEC, frame, y, X_test=frame[["b", "a"]], y_test=y, n=10, progressbar=False)


def test_regressor_cv_scores_are_in_the_units_of_y():
    # the regressor fits the standardised y; its CV table was in those units (rmse / y_scale_)
    rng = np.random.default_rng(5)
    X = rng.normal(size=(60, 2))
    y = np.sin(X[:, 0]) + 0.1 * rng.normal(size=60)
    unit = bp.BNNRegressorCV((3,), prior_scales=(1.0,), cv=2, n_iter=300, random_state=0).fit(X, y)
    big = bp.BNNRegressorCV((3,), prior_scales=(1.0,), cv=2, n_iter=300, random_state=0).fit(X, 5e6 + 1000 * y)
    np.testing.assert_allclose(big.cv_results_["rmse"], 1000 * unit.cv_results_["rmse"], rtol=1e-6)
    np.testing.assert_allclose(big.cv_results_["test_nll"], unit.cv_results_["test_nll"] + np.log(1000), rtol=1e-6)
    assert big.cv_summary_["mean"].iloc[0] == pytest.approx(np.mean(big.cv_results_["test_nll"]))

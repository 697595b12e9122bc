"""scikit-learn estimators: the estimator checks, labels, inputs, pipelines, pickling and saving."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from bnn_ppl.errors import DataError, ModelFileError, SpecError
from bnn_ppl.sklearn import BNNClassifier, BNNRegressor

FAST = {"hidden_layer_sizes": (4,), "n_iter": 1000, "draws": 100, "random_state": 0}

#: Every check passes; none is listed as an expected failure.
EXPECTED_FAILED_CHECKS: dict[str, str] = {}


@pytest.mark.slow  # ~100 fits, each compiling a fresh graph: minutes on a 2-core machine
@parametrize_with_checks(
    [BNNClassifier(**FAST), BNNRegressor(**FAST)],
    expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS,
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def moons_small(moons):
    X_train, X_test, y_train, y_test = moons
    labels = np.array(["left", "right"])
    return X_train[:300], X_test[:200], labels[y_train[:300]], labels[y_test[:200]]


@pytest.fixture(scope="module")
def string_clf(moons_small):
    X, _, y, _ = moons_small
    frame = pd.DataFrame(X, columns=["u", "v"])
    return BNNClassifier((5,), n_iter=2000, draws=200, random_state=0).fit(frame, y)


def test_string_labels_and_pandas_input(string_clf, moons_small):
    _, X_test, _, y_test = moons_small
    frame = pd.DataFrame(X_test, columns=["u", "v"])
    assert string_clf.classes_.tolist() == ["left", "right"]
    assert string_clf.feature_names_in_.tolist() == ["u", "v"]
    assert string_clf.n_features_in_ == 2
    assert list(string_clf.result_.built.model.coords["dense_0_in"]) == ["u", "v"]
    pred = string_clf.predict(frame)
    assert set(pred) <= {"left", "right"}
    assert string_clf.score(frame, y_test) > 0.8  # chance is 0.5
    proba = string_clf.predict_proba(frame)
    assert proba.shape == (200, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(proba, string_clf.predict_proba(frame))  # reproducible draws
    assert string_clf.n_iter_ == 2000 and string_clf.loss_curve_.shape == (2000,)
    # targets as a column vector or a one-column DataFrame score as the 1-D labels do
    accuracy = string_clf.evaluate(frame, y_test).accuracy
    assert string_clf.evaluate(frame, y_test[:, None]).accuracy == accuracy
    assert string_clf.evaluate(frame, pd.DataFrame({"label": y_test})).accuracy == accuracy
    with pytest.raises(DataError, match=r"y must be 1-D \(one target per row\). Got shape \(200, 2\)"):
        string_clf.evaluate(frame, np.c_[y_test, y_test])


def test_list_input_and_integer_labels_multiclass(tiny_classification):
    X, y = tiny_classification
    labels = np.array([10, 20, 30])[y]
    clf = BNNClassifier((4,), n_iter=1500, draws=100, random_state=1).fit(X.tolist(), labels.tolist())
    assert clf.classes_.tolist() == [10, 20, 30]
    assert clf.result_.spec.likelihood.n_outputs == 3
    assert clf.predict_proba(X[:5].tolist()).shape == (5, 3)
    assert clf.score(X, labels) > 0.7


def test_pickle_and_save_load_keep_predictions(string_clf, moons_small, tmp_path):
    X_test = pd.DataFrame(moons_small[1], columns=["u", "v"])
    expected = string_clf.predict_proba(X_test)
    unpickled = pickle.loads(pickle.dumps(string_clf))
    np.testing.assert_array_equal(unpickled.predict_proba(X_test), expected)
    string_clf.save(tmp_path / "clf.bnn")
    loaded = BNNClassifier.load(tmp_path / "clf.bnn")
    np.testing.assert_array_equal(loaded.predict_proba(X_test), expected)
    assert loaded.get_params() == string_clf.get_params()
    assert loaded.classes_.dtype == string_clf.classes_.dtype
    with pytest.raises(ModelFileError, match="holds BNNClassifier, not a BNNRegressor"):
        BNNRegressor.load(tmp_path / "clf.bnn")


@pytest.mark.parametrize(("edit", "message"), [
    (lambda state: state["params"].update(evil=1), r"state in metadata.json is damaged \(unknown parameters \['evil'\]\)"),
    (lambda state: state.update(params=[1]), "state in metadata.json is damaged"),
    (lambda state: state.update(classes_dtype="O;rm"), "state in metadata.json is damaged"),
    (lambda state: state.update(classes_=["a", "b", "c"]), "lists 3 classes for a model with 2"),
])
def test_an_edited_estimator_state_is_a_model_file_error(string_clf, tmp_path, edit, message):
    import hashlib
    import json
    import zipfile

    path = string_clf.save(tmp_path / "clf.bnn")
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    meta = json.loads(members["metadata.json"])
    edit(meta["estimator"])
    members["metadata.json"] = json.dumps(meta).encode()
    manifest = json.loads(members["manifest.json"])  # a careful forger updates the checksum too
    if "metadata.json" in manifest["members"]:
        manifest["members"]["metadata.json"] = hashlib.sha256(members["metadata.json"]).hexdigest()
    members["manifest.json"] = json.dumps(manifest).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    with pytest.raises(ModelFileError, match=message):
        BNNClassifier.load(path)


def test_numpy_scalar_settings_save_and_load(tmp_path):
    X, y = np.random.default_rng(0).normal(size=(30, 2)), np.arange(30) % 2
    clf = BNNClassifier((3,), n_iter=np.int64(20), learning_rate=np.float32(0.05), random_state=0).fit(X, y)
    loaded = BNNClassifier.load(clf.save(tmp_path / "np.bnn"))
    assert loaded.get_params()["learning_rate"] == float(np.float32(0.05)) and loaded.get_params()["n_iter"] == 20
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))


def test_bnn_ppl_load_refuses_an_estimator_file(string_clf, tmp_path):
    import bnn_ppl as bp
    from bnn_ppl import io as model_io

    path = string_clf.save(tmp_path / "clf.bnn", include_data=False)
    with pytest.raises(ModelFileError) as info:
        bp.load(path)
    message = str(info.value)
    assert f"{path} holds a fitted BNNClassifier" in message and "bnn_ppl.BNNClassifier.load(path)" in message
    result, meta = model_io.load_with_metadata(path)  # still reads it, for the bare fit
    assert meta["estimator"]["class"] == "BNNClassifier" and result.n_steps == string_clf.n_iter_
    assert BNNClassifier.load(path).classes_.tolist() == ["left", "right"]


def test_regressor_normalises_y_and_reports_std():
    rng = np.random.default_rng(0)
    X = rng.uniform(-2, 2, size=(120, 1))
    y = 500.0 + 100.0 * np.sin(X[:, 0]) + 10.0 * rng.normal(size=120)
    reg = BNNRegressor((8,), n_iter=2000, draws=200, random_state=0).fit(X, y)
    assert reg.y_mean_ == pytest.approx(y.mean()) and reg.y_scale_ == pytest.approx(y.std())
    mean, std = reg.predict(X, return_std=True)
    assert reg.score(X, y) > 0.8
    assert np.all(std > 3.0) and np.all(std < 40.0)  # noise sd is 10 in y units
    assert abs(mean.mean() - y.mean()) < 10.0


def test_errors_name_the_problem():
    X = np.zeros((6, 2))
    with pytest.raises(DataError, match="at least 2 classes"):
        BNNClassifier(**FAST).fit(X, [1] * 6)
    with pytest.raises(SpecError, match="'hidden_layer_sizes' parameter of BNNClassifier"):
        BNNClassifier(hidden_layer_sizes=(0,), n_iter=10).fit(X, [0, 1] * 3)
    with pytest.raises(ValueError, match="Unknown label type"):
        BNNClassifier(**FAST).fit(X, np.linspace(0, 1, 6))


def test_pipeline_and_cross_val_score(moons_small):
    X, _, y, _ = moons_small
    pipe = make_pipeline(StandardScaler(), BNNClassifier((4,), n_iter=800, draws=100, random_state=0))
    scores = cross_val_score(pipe, X * 10.0 + 3.0, y, cv=KFold(2, shuffle=True, random_state=0))
    assert scores.shape == (2,) and np.all(scores > 0.8)


@pytest.mark.slow  # worker start-up and compiles in two processes: ~30 s
def test_grid_search_process_workers_match_in_process(moons_small):
    """GridSearchCV(n_jobs=2) runs fits in loky worker processes, each compiling its own graphs
    (PyTensor's on-disk compile cache is locked per compile); scores equal in-process fits."""
    X, _, y, _ = moons_small
    est = BNNClassifier((4,), n_iter=500, draws=100, random_state=0)
    cv = KFold(2, shuffle=True, random_state=0)
    grid = GridSearchCV(est, {"learning_rate": [0.01, 0.05]}, cv=cv, n_jobs=2).fit(X, y)
    in_process = cross_val_score(clone(est).set_params(learning_rate=0.05), X, y, cv=cv)
    assert grid.cv_results_["mean_test_score"][1] == pytest.approx(in_process.mean(), abs=1e-12)
    assert grid.best_estimator_.result_.n_steps == 500


def test_bad_draws_is_a_parameter_error():
    from bnn_ppl.errors import ParameterError

    with pytest.raises(ParameterError, match="'draws' parameter of BNNClassifier must be a positive integer"):
        BNNClassifier((2,), n_iter=10, draws=0).fit(np.zeros((6, 2)), [0, 1] * 3)

"""Compile layer: named dims, swappable data, minibatch scaling and alignment, data errors, numerics."""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.graph.traversal import ancestors
from scipy import special, stats

import bnn_ppl as bp
from bnn_ppl.array_ops import jax_ops, numpy_ops, pytensor_ops
from bnn_ppl.spec.activations import apply_activation
from bnn_ppl.errors import DataError, SpecError
from bnn_ppl.spec import (
    ACTIVATIONS,
    Bernoulli,
    Categorical,
    Dense,
    FanInNormal,
    Hierarchical,
    Network,
    Normal,
    NormalLikelihood,
)

FAST = "FAST_COMPILE"  # python linker: these tests check values, not speed


def _data(n=40, d=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = rng.integers(0, 2, size=n)  # random labels: any X/y misalignment shows up
    return X, y


def _binary_spec(**kw):
    return Network([Dense(4), Dense(1, "identity")], Bernoulli(), prior=Normal(1.0), **kw)


def _point(model, seed=1):
    rng = np.random.default_rng(seed)
    return {k: rng.normal(size=np.shape(v)) for k, v in model.initial_point().items()}


def _np_forward(point, X, layers):
    h = X
    for i, act in enumerate(layers):
        h = h @ point[f"dense_{i}_w"] + point[f"dense_{i}_b"]
        h = np.tanh(h) if act == "tanh" else h
    return h


def _bernoulli_logp(logits, y):
    return np.where(y == 1, -np.logaddexp(0, -logits), -np.logaddexp(0, logits))


# ---------------------------------------------------------------- structure
def test_coords_dims_and_variable_names():
    X, y = _data()
    built = bp.build_model(_binary_spec(), X, y, feature_names=["a", "b", "c"])
    model = built.model
    assert isinstance(model, pm.Model)
    assert list(model.coords) == ["dense_0_in", "dense_0_out", "dense_1_in", "dense_1_out", "obs"]
    assert list(model.coords["dense_0_in"]) == ["a", "b", "c"]
    assert len(model.coords["dense_0_out"]) == 4 and int(model.dim_lengths["obs"].eval()) == 40
    dims = model.named_vars_to_dims
    assert dims["dense_0_w"] == ("dense_0_in", "dense_0_out")
    assert dims["dense_1_b"] == ("dense_1_out",)
    assert dims["X"] == ("obs", "dense_0_in") and dims["y"] == ("obs",) and dims["y_obs"] == ("obs",)
    assert built.free_rv_names == ["dense_0_w", "dense_0_b", "dense_1_w", "dense_1_b"]
    assert [rv.name for rv in model.observed_RVs] == ["y_obs"]
    assert built.spec.input_dim == 3 and built.n_obs == 40 and built.batch_size is None
    assert built.X_data is model["X"] and built.y_data is model["y"]


def test_class_names_label_the_output_dim_and_no_bias_layers_have_no_b():
    X, _ = _data()
    y = np.arange(40) % 3
    spec = Network([Dense(2, bias=False), Dense(3, "identity")], Categorical(3))
    built = bp.build_model(spec, X, y, class_names=["r", "g", "b"])
    assert list(built.model.coords["dense_1_out"]) == ["r", "g", "b"]
    assert "dense_0_b" not in built.model.named_vars and "b" not in built.params["dense_0"]


@pytest.mark.parametrize(("likelihood", "names", "message"), [
    (Categorical(3), ["r", "g"], "class_names has 2 names for the 3 classes of the Categorical likelihood"),
    (Bernoulli(), ["no", "maybe", "yes"], "class_names has 3 names for the 2 classes of the Bernoulli"),
    (Bernoulli(), "ab", "class_names has 'ab' for the 2 classes"),
    (bp.NormalLikelihood(), ["a", "b"], "a Normal .regression. likelihood has none"),
])
def test_class_names_of_the_wrong_length_are_refused(likelihood, names, message):
    X, _ = _data()
    y = np.arange(40) % (3 if isinstance(likelihood, Categorical) else 2)
    spec = Network([Dense(2), Dense(likelihood.n_outputs, "identity")], likelihood)
    with pytest.raises(bp.DataError, match=message):
        bp.build_model(spec, X, y, class_names=names)


def test_priors_compile_to_the_stated_distributions():
    X, y = _data(d=4)
    spec = Network(
        [Dense(3, prior=FanInNormal(2.0)), Dense(2, prior=Hierarchical(0.5, "half_normal", fan_in=True)), Dense(1, "identity")],
        Bernoulli(),
        prior=Normal(0.7, mu=0.2),
        bias_prior=Normal(3.0),
    )
    built = bp.build_model(spec, X, y)
    model = built.model
    names = [rv.name for rv in model.free_RVs]
    assert "dense_1_w_scale" in names and "dense_1_w" in model.named_vars
    point = _point(model)
    logps = model.compile_fn(model.logp(vars=list(model.free_RVs), sum=False), mode=FAST)(point)
    got = dict(zip(names, logps, strict=True))
    np.testing.assert_allclose(got["dense_0_w"], stats.norm(0, 2.0 / np.sqrt(4)).logpdf(point["dense_0_w"]))
    np.testing.assert_allclose(got["dense_2_w"], stats.norm(0.2, 0.7).logpdf(point["dense_2_w"]))
    np.testing.assert_allclose(got["dense_0_b"], stats.norm(0, 3.0).logpdf(point["dense_0_b"]))
    tau = np.exp(point["dense_1_w_scale_log__"])
    if "dense_1_w_raw" in names:  # non-centred: w = tau / sqrt(fan_in) * raw, raw ~ N(0, 1)
        assert "dense_1_w" not in names
        np.testing.assert_allclose(got["dense_1_w_raw"], stats.norm(0, 1).logpdf(point["dense_1_w_raw"]))
        graph = model.replace_rvs_by_values([model["dense_1_w"]])[0]
        w = model.compile_fn(graph, inputs=model.value_vars, mode=FAST, on_unused_input="ignore")(point)
        np.testing.assert_allclose(w, tau / np.sqrt(3) * point["dense_1_w_raw"])
    else:  # centred: w ~ N(0, tau / sqrt(fan_in))
        np.testing.assert_allclose(got["dense_1_w"], stats.norm(0, tau / np.sqrt(3)).logpdf(point["dense_1_w"]))


@pytest.mark.parametrize("backend", ["numpy", "pytensor", "jax"])
@pytest.mark.parametrize("name", ACTIVATIONS.names())
def test_activations_match_numpy(name, backend):
    z = np.linspace(-4, 4, 17)
    ref = {
        "tanh": np.tanh(z),
        "relu": np.maximum(z, 0),
        "sigmoid": special.expit(z),
        "softplus": np.logaddexp(0, z),
        "elu": np.where(z > 0, z, np.expm1(z)),
        "gelu": z * 0.5 * (1 + special.erf(z / np.sqrt(2))),
        "silu": z * special.expit(z),
        "identity": z,
    }[name]
    if backend == "pytensor":
        x = pt.vector("x", dtype="float64")
        got = pytensor.function([x], apply_activation(pytensor_ops(), name, x), mode=FAST)(z)
    elif backend == "jax":
        pytest.importorskip("jax")
        from bnn_ppl.array_ops import pymc_jax_bridge

        pymc_jax_bridge()  # x64, as the engine runs it

        got = np.asarray(apply_activation(jax_ops(), name, z))
    else:
        got = apply_activation(numpy_ops(), name, z)
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------- full-batch logp and data swap
def test_logp_matches_hand_computation_and_set_data_swaps_rows():
    X, y = _data()
    built = bp.build_model(_binary_spec(), X, y)
    model = built.model
    point = _point(model)
    obs_logp = model.compile_fn(model.logp(vars=[model["y_obs"]]), mode=FAST)
    expected = _bernoulli_logp(_np_forward(point, X, ["tanh", "id"])[:, 0], y).sum()
    np.testing.assert_allclose(obs_logp(point), expected, rtol=1e-10)

    X2, y2 = _data(n=7, seed=5)
    with model:
        pm.set_data({"X": X2, "y": y2.astype(built.y_data.dtype)})
    assert int(model.dim_lengths["obs"].eval()) == 7
    expected2 = _bernoulli_logp(_np_forward(point, X2, ["tanh", "id"])[:, 0], y2).sum()
    np.testing.assert_allclose(obs_logp(point), expected2, rtol=1e-10)
    out = model.compile_fn(model.replace_rvs_by_values([built.output])[0], mode=FAST)(point)
    assert out.shape == (7, 1)


def test_normal_likelihood_logp_has_learned_noise():
    X, _ = _data()
    y = X[:, 0] * 2.0 + 0.1
    spec = Network([Dense(3), Dense(1, "identity")], NormalLikelihood(sigma_prior=2.0), prior=Normal(1.0))
    built = bp.build_model(spec, X, y)
    model = built.model
    assert "sigma" in built.free_rv_names
    point = _point(model)
    sigma = np.exp(point["sigma_log__"])
    f = model.compile_fn([model.logp(vars=[model["y_obs"]]), model.logp(vars=[model["sigma"]], jacobian=False)], mode=FAST)
    obs, prior = f(point)
    mean = _np_forward(point, X, ["tanh", "id"])[:, 0]
    np.testing.assert_allclose(obs, stats.norm(mean, sigma).logpdf(y).sum(), rtol=1e-7)
    np.testing.assert_allclose(prior, stats.halfnorm(scale=2.0).logpdf(sigma), rtol=1e-7)


# ---------------------------------------------------------------- minibatch
def _minibatch_outputs(built):
    nodes = {v.owner for v in ancestors([built.output]) if v.owner is not None and type(v.owner.op).__name__ == "MinibatchOp"}
    assert len(nodes) == 1, "X and y must come from ONE pm.Minibatch call"
    node = nodes.pop()
    assert [i.name for i in node.inputs[:2]] == ["X", "y"]
    return node.outputs[0], node.outputs[1]


def test_minibatch_logp_is_scaled_by_n_over_b_and_rows_stay_aligned():
    n, batch = 40, 8
    X, y = _data(n=n)
    built = bp.build_model(_binary_spec(), X, y, batch_size=batch)
    model = built.model
    assert built.batch_size == batch and built.n_obs == n
    xb, yb = _minibatch_outputs(built)
    point = _point(model)
    f = model.compile_fn(
        [model.logp(vars=[model["y_obs"]]), model.logp(), model.logp(vars=list(model.free_RVs)), xb, yb],
        mode=FAST,
    )
    seen = set()
    for _ in range(5):
        obs, total, prior, Xb, Yb = f(point)
        assert Xb.shape == (batch, 3) and Yb.shape == (batch,)
        rows = [int(np.flatnonzero((X == row).all(axis=1))[0]) for row in Xb]
        np.testing.assert_array_equal(Yb, y[rows])  # each x row keeps its own label
        seen.update(rows)
        batch_logp = _bernoulli_logp(_np_forward(point, Xb, ["tanh", "id"])[:, 0], Yb).sum()
        np.testing.assert_allclose(obs, n / batch * batch_logp, rtol=1e-10)
        np.testing.assert_allclose(total, prior + obs, rtol=1e-10)
    assert len(seen) > batch  # a fresh random batch per call


def test_minibatch_model_predicts_on_the_full_data_through_forward():
    X, y = _data()
    built = bp.build_model(_binary_spec(), X, y, batch_size=8)
    point = _point(built.model)
    x = pt.matrix("x", dtype="float64")
    model = built.model
    graph = model.replace_rvs_by_values([built.forward(x)])[0]
    out = pytensor.function([x, *model.value_vars], graph, mode=FAST)
    got = out(X, *[point[v.name] for v in model.value_vars])
    np.testing.assert_allclose(got, _np_forward(point, X, ["tanh", "id"]), rtol=1e-10)


# ---------------------------------------------------------------- data errors
@pytest.mark.parametrize(
    ("X", "y", "kwargs", "fragments"),
    [
        (np.array([[0.0, np.nan, 1.0], [1.0, 2.0, 3.0]]), [0, 1], {}, ["X contains NaN", "rows [0]", "impute or drop"]),
        (np.array([[0.0, np.inf, 1.0]]), [0], {}, ["NaN or infinite"]),
        (np.zeros(3), [0, 1, 0], {}, ["X must be a 2-D array", "shape (3,)"]),
        (np.zeros((2, 3, 1)), [0, 1], {}, ["examples of shape (3, 1)", "put Flatten() before it"]),
        (np.zeros((0, 3)), [], {}, ["X has no rows"]),
        ([["a", "b", "c"]], [0], {}, ["X must be numeric"]),
        (np.zeros((4, 3)), [0, 1, 0], {}, ["y has 3 rows but X has 4"]),
        (np.zeros((2, 3)), np.zeros((2, 2)), {}, ["y must be 1-D", "(2, 2)"]),
        (np.zeros((2, 3)), [0, np.nan], {}, ["y contains NaN"]),
        (np.zeros((3, 3)), [0, 1, 2], {}, ["0/1 labels", "Bernoulli", "[2]"]),
        (np.zeros((3, 3)), [0, 1, -1], {}, ["0/1 labels", "[-1]"]),
        (np.zeros((2, 3)), [0, 0.5], {}, ["integer class labels"]),
        (np.zeros((2, 3)), ["no", "yes"], {}, ["y must be numeric", "0..K-1"]),
        (np.zeros((4, 3)), [0, 1, 0, 1], {"batch_size": 5}, ["batch_size=5", "larger than the 4 training rows"]),
        (np.zeros((4, 3)), [0, 1, 0, 1], {"batch_size": 0}, ["'batch_size'", "positive integer", "Got 0"]),
        (np.zeros((4, 3)), [0, 1, 0, 1], {"batch_size": 2.5}, ["'batch_size'", "Got 2.5"]),
    ],
)
def test_bernoulli_data_errors(X, y, kwargs, fragments):
    with pytest.raises(DataError) as info:
        bp.build_model(_binary_spec(), X, y, **kwargs)
    for fragment in fragments:
        assert fragment in str(info.value), f"{fragment!r} missing from: {info.value}"


def test_width_mismatch_with_spec_input_dim():
    with pytest.raises(DataError, match="X has 3 features but the network expects 2"):
        bp.build_model(_binary_spec(input_dim=2), np.zeros((4, 3)), [0, 1, 0, 1])


@pytest.mark.parametrize(("labels", "fragment"), [([0, 1, 3], "Got labels from 0 to 3"), ([-1, 0, 1], "Got labels from -1 to 1")])
def test_categorical_labels_outside_0_to_k_minus_1(labels, fragment):
    spec = Network([Dense(3, "identity")], Categorical(3))
    with pytest.raises(DataError, match=rf"labels 0..2 for Categorical\(n_classes=3\). {fragment}; fix n_classes"):
        bp.build_model(spec, np.zeros((3, 2)), labels)


def test_k_mismatch_between_likelihood_and_output_layer():
    with pytest.raises(SpecError, match=r"3 unit\(s\) for the Categorical likelihood.*Got output shape \(4,\)"):
        Network([Dense(4, "identity")], Categorical(3))


def test_layer_names_whose_variables_clash_raise_a_spec_error():
    # a hierarchical prior on layer "a" makes a_w_scale; a LayerNorm named "a_w" makes its own a_w_scale
    spec = Network([Dense(3, "tanh", name="a", prior=bp.Hierarchical()), bp.LayerNorm(name="a_w"),
                    Dense(1, "identity")], bp.Bernoulli())
    with pytest.raises(SpecError, match=r"Layer 'a_w': its 'scale' parameter makes the PyMC variable a_w_scale.*"
                                        r"Rename one of the two layers"):
        bp.build_model(spec, np.zeros((4, 2)), [0, 1, 0, 1])
    named_prior = Network([Dense(3), bp.LayerNorm(name="prior"), Dense(1, "identity")], bp.Bernoulli())
    with pytest.raises(SpecError, match=r"Layer 'prior'.*the name of build_model's own pm.Data 'prior_scale'"):
        bp.build_model(named_prior, np.zeros((4, 2)), [0, 1, 0, 1], prior_scale=1.0)


def test_bad_spec_argument():
    with pytest.raises(SpecError, match="build_model needs a Network spec. Got dict"):
        bp.build_model({"layers": []}, np.zeros((2, 2)), [0, 1])


def test_complex_features_are_refused():
    X, y = _data()
    with pytest.raises(bp.DataError, match="X holds complex numbers"):
        bp.build_model(Network([Dense(1, "identity")], Bernoulli()), X + 1j, y)


def test_a_sparse_matrix_is_refused_with_the_fix():
    sparse = pytest.importorskip("scipy.sparse")
    X, y = _data()
    with pytest.raises(bp.DataError, match=r"X is a sparse matrix \(csr_matrix\).*pass X.toarray\(\)"):
        bp.build_model(Network([Dense(1, "identity")], Bernoulli()), sparse.csr_matrix(X), y)


def test_labels_are_stored_exactly_and_pandas_is_accepted():
    pd = pytest.importorskip("pandas")
    X = pd.DataFrame(np.random.default_rng(0).normal(size=(6, 2)), columns=["u", "v"])
    y = pd.Series([0, 1, 2, 3, 4, 5])
    built = bp.build_model(Network([Dense(6, "identity")], Categorical(6)), X, y)
    np.testing.assert_array_equal(built.y_data.get_value(), np.arange(6))
    np.testing.assert_array_equal(built.X_data.get_value(), X.to_numpy())
    # named columns become the feature coords, and the predictor reads DataFrames by those names
    assert built.model.coords["dense_0_in"] == ("u", "v") and built.feature_names == ["u", "v"]
    result = bp.fit(built, n=20, progressbar=False)
    with pytest.raises(bp.DataError, match=r"another order; select them in the training order: X\[\['u', 'v'\]\]"):
        result.predictor().sample(X[["v", "u"]], draws=2)
    with pytest.raises(bp.DataError, match=r"missing \['v'\], unexpected \['w'\]"):
        result.evaluate(X.rename(columns={"v": "w"}), y)
    assert result.predictor().sample(X, draws=2).shape == result.predictor().sample(X.to_numpy(), draws=2).shape


@pytest.mark.parametrize(("float_x", "big"), [("float64", 2**53 + 5), ("float32", 2**24 + 5)])
def test_int_labels_never_silently_overflow(float_x, big):
    # Labels live in floatX (pm.set_data then takes float and int labels); past the float's
    # exact integers they would round. n_classes is huge but the guard fires before any
    # weight is created or compiled.
    spec = Network([Dense(big + 1, "identity")], Categorical(big + 1))
    with pytensor.config.change_flags(floatX=float_x):
        with pytest.raises(DataError, match=rf"Labels up to {big} do not fit floatX {float_x} exactly"):
            bp.build_model(spec, np.zeros((3, 1)), [0, 1, big], max_parameters=10**18)


def test_float32_labels_kept_exact_below_the_limit():
    spec = Network([Dense(3, "identity")], Categorical(3))
    with pytensor.config.change_flags(floatX="float32"):
        built = bp.build_model(spec, np.zeros((3, 2)), [2, 0, 1])
        assert built.X_data.dtype == "float32"
    np.testing.assert_array_equal(built.y_data.get_value(), [2, 0, 1])


def test_string_regression_targets_get_regression_wording():
    spec = Network([Dense(1, "identity")], NormalLikelihood())
    with pytest.raises(DataError) as info:
        bp.build_model(spec, np.zeros((2, 3)), ["1.5", "abc"])
    assert str(info.value).startswith("y must be numeric for a Normal (regression) likelihood. Got dtype <U3;")
    assert "0..K-1" not in str(info.value)


@pytest.mark.parametrize(("task", "cell"), [("auto", ""), ("classification", "  "), ("regression", "")])
def test_csv_with_an_empty_target_cell_is_a_data_error(tmp_path, task, cell):
    from bnn_ppl.datasets import load_dataset

    path = tmp_path / "data.csv"
    rows = [f"{i},{i % 3},{'yes' if i % 2 else 'no'}" for i in range(8)]
    rows[4] = f"4,1,{cell}"
    path.write_text("a,b,label\n" + "\n".join(rows) + "\n")
    with pytest.raises(DataError) as info:
        load_dataset(path, task=task)
    expected = f"{path}: the target column 'label' is empty on line 6; fill in the target or drop the row."
    assert str(info.value) == expected
    rows[4] = "4,1,no"
    path.write_text("a,b,label\n" + "\n".join(rows) + "\n")
    assert load_dataset(path, task="classification").class_names == ["no", "yes"]


@pytest.mark.parametrize(("task", "cell", "what"), [("regression", "nan", "target column 'label'"),
                                                    ("classification", "inf", "target column 'label'"),
                                                    ("auto", "1", "column 'a'")])
def test_csv_with_non_finite_cells_names_the_line(tmp_path, task, cell, what):
    from bnn_ppl.datasets import load_dataset

    path = tmp_path / "data.csv"
    rows = [f"{i},{i % 3},{i % 2}" for i in range(8)]
    rows[3] = f"nan,0,{cell}" if what == "column 'a'" else f"3,0,{cell}"
    path.write_text("a,b,label\n" + "\n".join(rows) + "\n")
    bad = "nan" if what == "column 'a'" else cell
    with pytest.raises(DataError, match=f"the {what} holds '{bad}' on line 5; fill in a number or drop the row"):
        load_dataset(path, task=task)


def test_csv_with_a_byte_order_mark_keeps_its_first_column_name(tmp_path):
    from bnn_ppl.datasets import load_dataset

    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbf" + ("a,b,y\n" + "\n".join(f"{i},{i % 3},{i % 2}" for i in range(8)) + "\n").encode())
    assert load_dataset(path, target="y").feature_names == ["a", "b"]


@pytest.mark.parametrize(("n", "noise", "seed", "test_size"), [(1000, 0.2, 0, 0.5), (7, 0.3, 5, 0.3), (1001, 0.1, 3, 0.25)])
def test_embedded_moons_and_split_equal_scikit_learns(n, noise, seed, test_size):
    from sklearn.datasets import make_moons as sk_moons
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import scale

    from bnn_ppl.datasets import _standardise, make_moons, shuffle_split

    X, y = make_moons(n, noise=noise, random_state=seed)
    X_sk, y_sk = sk_moons(n, noise=noise, random_state=seed)
    np.testing.assert_array_equal(X, X_sk)
    np.testing.assert_array_equal(y, y_sk)
    ours = shuffle_split(_standardise(X), y, test_size=test_size, random_state=seed + 1)
    theirs = train_test_split(scale(X_sk), y_sk, test_size=test_size, random_state=seed + 1)
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(a, b)


def test_load_dataset_moons_and_regression_csv_import_no_scikit_learn(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "data.csv"
    path.write_text("a,b,t\n" + "\n".join(f"{i},{i % 3},{i * 0.5 + 0.25}" for i in range(10)) + "\n")
    code = ("import sys; from bnn_ppl.datasets import load_dataset; a = load_dataset('moons'); "
            f"b = load_dataset({str(path)!r}); print(a.X_train.shape, b.X_test.shape, 'sklearn' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["(500,", "2)", "(5,", "2)", "False"]


@pytest.mark.parametrize("test_size", [0.0, 1.0, -0.2, "half", True, np.float32(1.5)])
def test_load_dataset_rejects_a_test_size_outside_0_1(test_size):
    from bnn_ppl.datasets import load_dataset

    with pytest.raises(DataError, match="'test_size' parameter must be a fraction between 0 and 1"):
        load_dataset("moons", test_size=test_size)


def test_load_dataset_takes_a_numpy_test_size():
    from bnn_ppl.datasets import load_dataset

    assert load_dataset("moons", test_size=np.float32(0.25)).X_test.shape == (250, 2)


def test_a_test_size_leaving_no_train_rows_is_a_data_error(tmp_path):
    from bnn_ppl.datasets import load_dataset

    path = tmp_path / "two.csv"
    path.write_text("a,t\n1,0.5\n2,1.5\n")
    with pytest.raises(DataError, match=r"test_size=0.9 of 2 rows leaves no train or no test rows"):
        load_dataset(path, test_size=0.9)


# ---------------------------------------------------------------- numerics
def test_categorical_gradient_finite_with_logits_spread_beyond_1000():
    X = np.array([[1.0, -1.0], [-2.0, 0.5], [3.0, 2.0]])
    y = np.array([0, 1, 2])
    built = bp.build_model(Network([Dense(3, "identity")], Categorical(3), prior=Normal(1.0)), X, y)
    model = built.model
    point = {"dense_0_w": np.array([[900.0, -800.0, 10.0], [-700.0, 600.0, 0.0]]), "dense_0_b": np.zeros(3)}
    logits = X @ point["dense_0_w"]
    assert np.ptp(logits, axis=1).max() > 1000
    logp = model.compile_fn(model.logp(vars=[model["y_obs"]]), mode=FAST)(point)
    np.testing.assert_allclose(logp, special.log_softmax(logits, axis=1)[np.arange(3), y].sum(), rtol=1e-12)
    grad = model.compile_dlogp()(point)
    assert np.all(np.isfinite(grad)) and np.abs(grad).max() > 1.0


def test_categorical_likelihood_supports_forward_sampling():
    X = np.eye(3)
    built = bp.build_model(Network([Dense(3, "identity")], Categorical(3), prior=Normal(1.0)), X, [0, 1, 2])
    with built.model:
        prior = pm.sample_prior_predictive(draws=50, random_seed=0, var_names=["y_obs"])
    draws = prior.prior_predictive["y_obs"].values
    assert draws.shape == (1, 50, 3) and set(np.unique(draws)) <= {0, 1, 2} and len(np.unique(draws)) == 3


def test_absurd_sizes_are_refused_before_anything_is_allocated():
    spec = Network([Dense(1_000_000_000), Dense(1, "identity")], Bernoulli())
    with pytest.raises(SpecError, match=r"8,000,000,001 parameters \(dense_0: 7,000,000,000\).*GiB.*max_parameters=N"):
        bp.build_model(spec, np.zeros((4, 6)), [0, 1, 0, 1])
    small = bp.build_model(Network([Dense(3), Dense(1, "identity")], Bernoulli()), np.zeros((4, 6)), [0, 1, 0, 1],
                           max_parameters=25)
    assert small.spec.n_params() == 25
    with pytest.raises(SpecError, match="limit of 24 parameters"):
        bp.build_model(Network([Dense(3), Dense(1, "identity")], Bernoulli()), np.zeros((4, 6)), [0, 1, 0, 1],
                       max_parameters=24)


def test_the_model_carries_seeded_symmetry_breaking_initial_values():
    """pm.fit / pm.sample / pm.find_MAP on built.model start off the all-zero saddle (no bnn_ppl call)."""
    X, y = _data()
    a = bp.build_model(_binary_spec(), X, y, random_seed=1).model.initial_point()
    b = bp.build_model(_binary_spec(), X, y, random_seed=1).model.initial_point()
    c = bp.build_model(_binary_spec(), X, y, random_seed=2).model.initial_point()
    assert np.std(a["dense_0_w"]) > 0.1 and np.all(a["dense_0_b"] == 0)  # weights random, biases at 0
    np.testing.assert_array_equal(a["dense_0_w"], b["dense_0_w"])
    assert not np.allclose(a["dense_0_w"], c["dense_0_w"])
    # every hidden unit starts in its own direction: the weights are a scaled orthogonal matrix
    w = a["dense_0_w"]  # (inputs, 4 units), prior sigma 1
    short = min(w.shape)
    gram = w @ w.T if w.shape[0] == short else w.T @ w
    np.testing.assert_allclose(gram, max(w.shape) * np.eye(short), atol=1e-10)


def test_start_of_a_tensor_too_large_for_qr_is_iid_with_the_same_spread(monkeypatch):
    from bnn_ppl.compile import start

    monkeypatch.setattr(start, "ORTHOGONAL_MAX_WORK", 40 * 40 * 40 - 1)
    w = start.draw_start(np.random.default_rng(0), (40, 40), 0.5)
    assert not np.allclose(w.T @ w, 40 * 0.25 * np.eye(40), atol=1e-6)
    assert abs(np.std(w) - 0.5) < 0.05
    small = start.draw_start(np.random.default_rng(0), (40, 39), 0.5)
    np.testing.assert_allclose(small.T @ small, 40 * 0.25 * np.eye(39), atol=1e-10)


def test_fit_starts_from_orthogonal_means_scaled_to_the_prior_spread():
    from bnn_ppl.inference.init import initial_means

    X, y = _data()
    built = bp.build_model(Network([Dense(8), Dense(3), Dense(1, "identity")], Bernoulli(), prior=Normal(0.5)), X, y)
    start = initial_means(built, np.random.default_rng(0))
    w = start["dense_0_w"]  # (inputs, 8)
    assert w.shape == (X.shape[1], 8)
    short = min(w.shape)
    gram = w @ w.T if w.shape[0] == short else w.T @ w
    np.testing.assert_allclose(gram, max(w.shape) * 0.25 * np.eye(short), atol=1e-10)
    np.testing.assert_allclose(start["dense_1_w"].T @ start["dense_1_w"], 8 * 0.25 * np.eye(3), atol=1e-10)


def test_a_nullable_pandas_column_with_missing_values_is_named_as_missing():
    pd = pytest.importorskip("pandas")
    X = pd.DataFrame({"a": pd.array([1.0, None, 3.0, 4.0], dtype="Float64"), "b": pd.array([1, 2, 3, 4], dtype="Int64")})
    with pytest.raises(bp.DataError, match=r"X contains NaN or infinite values \(rows \[1\].*impute or drop"):
        bp.build_model(Network([Dense(1, "identity")], Bernoulli()), X, [0, 1, 0, 1])  # was "X must be numeric"
    built = bp.build_model(Network([Dense(1, "identity")], Bernoulli()), X.fillna(0.0), [0, 1, 0, 1])
    np.testing.assert_array_equal(built.X_data.get_value()[:, 0], [1.0, 0.0, 3.0, 4.0])

"""Spec layer: validation wording, registries, purity (no pymc import) and TOML/JSON round trips."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bnn_ppl.errors import BnnPplError, DataError, ModelFileError, ParameterError, SpecError
from bnn_ppl.spec import (
    ACTIVATIONS,
    HYPERPRIORS,
    LIKELIHOODS,
    PRIORS,
    SCHEMA_VERSION,
    Bernoulli,
    Categorical,
    Dense,
    FanInNormal,
    Hierarchical,
    Network,
    Normal,
    NormalLikelihood,
    dump_spec,
    dumps_spec,
    load_spec,
    spec_from_dict,
    spec_to_dict,
)

ROOT = Path(__file__).resolve().parents[1]
MODEL_FILES = sorted((ROOT / "models").glob("*.toml")) + sorted((ROOT / "models").glob("*.json"))
OUT = Dense(1, "identity")


def _minimal(**extra):
    data = {"schema_version": 1, "layers": [{"units": 1, "activation": "identity"}], "likelihood": {"kind": "bernoulli"}}
    data.update(extra)
    return data


# ---------------------------------------------------------------- purity
def test_importing_spec_imports_no_pymc_pytensor_jax():
    code = (
        "import sys, bnn_ppl.spec, bnn_ppl.spec.io, bnn_ppl.registry, bnn_ppl.errors\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'pymc', 'pytensor', 'jax', 'jaxlib', 'numba'})\n"
        "print(','.join(bad))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert proc.stdout.strip() == "", f"bnn_ppl.spec imported heavy modules: {proc.stdout.strip()}"


# ---------------------------------------------------------------- registries
def test_registries_hold_the_required_names():
    assert set(ACTIVATIONS.names()) >= {"tanh", "relu", "sigmoid", "softplus", "elu", "gelu", "silu", "identity"}
    assert set(PRIORS.names()) >= {"normal", "fan_in_normal", "hierarchical"}
    assert set(LIKELIHOODS.names()) == {"bernoulli", "categorical", "normal"}
    assert PRIORS.get("normal") is Normal and LIKELIHOODS.get("normal") is NormalLikelihood


@pytest.mark.parametrize(
    ("registry", "bad"), [(ACTIVATIONS, "swish"), (PRIORS, "no_such_prior"), (LIKELIHOODS, "poisson")]
)
def test_registry_lookup_error_lists_every_choice(registry, bad):
    with pytest.raises(SpecError) as info:
        registry.get(bad)
    message = str(info.value)
    assert repr(bad) in message
    for name in registry.names():
        assert repr(name) in message


def test_registry_rejects_duplicate_names():
    with pytest.raises(ValueError, match="already registered"):
        ACTIVATIONS.add("tanh", ACTIVATIONS.get("relu"))


def test_every_array_namespace_has_every_primitive():
    from bnn_ppl.array_ops import PRIMITIVES, jax_ops, numpy_ops, pytensor_ops

    for ops in (numpy_ops(), pytensor_ops(), jax_ops()):
        assert all(callable(getattr(ops, name)) for name in PRIMITIVES), ops.name


def test_error_classes_subclass_builtins():
    for cls in (SpecError, DataError, ParameterError, ModelFileError):
        assert issubclass(cls, BnnPplError) and issubclass(cls, ValueError), cls
    import bnn_ppl

    assert bnn_ppl.ParameterError is ParameterError and "ParameterError" in bnn_ppl.__all__


# ---------------------------------------------------------------- validation wording
@pytest.mark.parametrize(
    ("make", "fragments"),
    [
        (lambda: Dense(0), ["'units'", "Dense", ">= 1", "Got 0"]),
        (lambda: Dense(2.5), ["'units'", "Got 2.5"]),
        (lambda: Dense(True), ["'units'", "Got True"]),
        (lambda: Dense(3, activation="swish"), ["'activation'", "'tanh'", "'gelu'", "Got 'swish'"]),
        (lambda: Dense(3, bias="yes"), ["'bias'", "true or false", "Got 'yes'"]),
        (lambda: Dense(3, prior=1.0), ["'prior'", "Prior", "Got 1.0"]),
        (lambda: Dense(3, bias_prior="normal"), ["'bias_prior'", "Got 'normal'"]),
        (lambda: Dense(3, name="1x"), ["'name'", "start with a letter", "Got '1x'"]),
        (lambda: Normal(sigma=-1.0), ["'sigma'", "Normal", "positive", "Got -1.0"]),
        (lambda: Normal(sigma=float("inf")), ["'sigma'", "Got inf"]),
        (lambda: Normal(mu=float("nan")), ["'mu'", "finite", "Got nan"]),
        (lambda: Normal(sigma="1"), ["'sigma'", "Got '1'"]),
        (lambda: Normal(sigma=True), ["'sigma'", "Got True"]),
        (lambda: Network([Dense(2), OUT], Bernoulli()).n_params(-3), ["'input_shape'", ">= 1", "Got -3"]),
        (lambda: Network([Dense(2), OUT], Bernoulli()).n_params((1.5,)), ["'input_shape'", "Got 1.5"]),
        (lambda: Network([Dense(2), OUT], Bernoulli()).n_params(("2",)), ["'input_shape'", "Got '2'"]),
        (lambda: Network([Dense(2), OUT], Bernoulli()).resolve(True), ["'input_shape'", "Got True"]),
        (lambda: Network([Dense(2), OUT], Bernoulli()).with_input_shape("ab"), ["'input_shape'", "Got 'ab'"]),
        (lambda: FanInNormal(scale=0), ["'scale'", "FanInNormal", "positive", "Got 0"]),
        (lambda: Hierarchical(scale=-2.0), ["'scale'", "Hierarchical", "Got -2.0"]),
        (lambda: Hierarchical(hyperprior="gamma"), ["'hyperprior'", "'half_normal'", "'exponential'", "Got 'gamma'"]),
        (lambda: Hierarchical(fan_in=1), ["'fan_in'", "true or false", "Got 1"]),
        (lambda: Categorical(1), ["'n_classes'", "Categorical", ">= 2", "Got 1"]),
        (lambda: NormalLikelihood(sigma_prior=0), ["'sigma_prior'", "positive", "Got 0"]),
        (lambda: Network([OUT], Bernoulli(), input_dim=0), ["'input_dim'", "Network", "Got 0"]),
        (lambda: Network([], Bernoulli()), ["'layers'", "at least one layer"]),
        (lambda: Network(OUT, Bernoulli()), ["'layers'", "list of layers"]),
        (lambda: Network([OUT, "dense"], Bernoulli()), ["layers[1]", "Dense", "Got 'dense'"]),
        (lambda: Network([OUT], "bernoulli"), ["'likelihood'", "Bernoulli()", "Got 'bernoulli'"]),
        (lambda: Network([OUT], Bernoulli(), prior="normal"), ["'prior'", "Network", "Got 'normal'"]),
        (lambda: Network([OUT], Bernoulli(), bias_prior=1.0), ["'bias_prior'", "Got 1.0"]),
        (lambda: Network([OUT], Bernoulli(), name=""), ["'name'", "start with a letter"]),
            (lambda: Network([OUT], Bernoulli(), name="../../etc/evil"), ["'name'", "'../../etc/evil'"]),
            (lambda: Network([OUT], Bernoulli(), name="/abs/path"), ["'name'", "output files"]),
        (lambda: Network([Dense(2), Dense(2, "identity")], Bernoulli()), ["1 unit(s)", "Bernoulli", "shape (2,)", "Dense(1, activation='identity')"]),
        (lambda: Network([Dense(2), Dense(3, "identity")], Categorical(4)), ["4 unit(s)", "Categorical", "shape (3,)"]),
        (lambda: Network([Dense(2), Dense(1, "tanh")], Bernoulli()), ["activation='identity'", "Got activation='tanh'"]),
        (lambda: Network([Dense(2, name="a"), Dense(1, "identity", name="a")], Bernoulli()), ["unique", "['a']"]),
    ],
)
def test_validation_errors_name_field_value_and_fix(make, fragments):
    with pytest.raises(SpecError) as info:
        make()
    for fragment in fragments:
        assert fragment in str(info.value), f"{fragment!r} missing from: {info.value}"


def test_resolve_applies_overrides_names_and_fan_in():
    override = Normal(0.5)
    net = Network(
        [Dense(4, prior=override), Dense(3, name="hidden", bias=False), Dense(2, "identity", bias_prior=FanInNormal(2.0))],
        Categorical(2),
        prior=FanInNormal(1.0),
        bias_prior=Normal(3.0),
    )
    shapes = net.resolve(input_shape=(5,))
    assert [s.name for s in shapes] == ["dense_0", "hidden", "dense_2"]
    assert [(s.param("w").fan_in, s.out_shape) for s in shapes] == [(5, (4,)), (4, (3,)), (3, (2,))]
    assert [p.var_name for p in shapes[1].params] == ["hidden_w"] and shapes[1].param("w").dims == ("hidden_in", "hidden_out")
    assert shapes[0].param("w").prior == override and shapes[1].param("w").prior == FanInNormal(1.0)
    assert shapes[0].param("b").prior == Normal(3.0) and shapes[2].param("b").prior == FanInNormal(2.0)
    assert net.n_params(5) == 5 * 4 + 4 + 4 * 3 + 3 * 2 + 2


def test_input_dim_conflict_and_unknown():
    net = Network([OUT], Bernoulli(), input_dim=3)
    with pytest.raises(SpecError, match=r"shape \(4,\) but the spec's input shape is \(3,\)"):
        net.resolve(4)
    with pytest.raises(SpecError, match="input shape is unknown"):
        Network([OUT], Bernoulli()).resolve()


def test_specs_are_frozen_and_hashable():
    net = Network([Dense(3), OUT], Bernoulli())
    with pytest.raises(AttributeError):
        net.name = "other"  # type: ignore[misc]
    assert hash(net) == hash(Network([Dense(3), OUT], Bernoulli()))


# ---------------------------------------------------------------- files
@pytest.mark.parametrize("path", MODEL_FILES, ids=lambda p: p.name)
def test_model_files_round_trip_exactly(path, tmp_path):
    spec = load_spec(path)
    fmt = path.suffix.lstrip(".")
    assert dumps_spec(spec, fmt) == path.read_text(encoding="utf-8")
    for other in ("toml", "json"):
        out = tmp_path / f"copy.{other}"
        dump_spec(spec, out)
        assert load_spec(out) == spec
        assert out.read_text(encoding="utf-8") == dumps_spec(spec, other)
    assert spec_from_dict(json.loads(json.dumps(spec_to_dict(spec)))) == spec


def test_model_zoo_has_the_issue_specs():
    moons, digits = load_spec(ROOT / "models/moons.toml"), load_spec(ROOT / "models/digits.toml")
    assert [(d.units, d.activation) for d in moons.layers] == [(5, "tanh"), (5, "tanh"), (1, "identity")]
    assert moons.prior == Normal(1.0) and moons.likelihood == Bernoulli() and moons.input_dim == 2
    assert [d.units for d in digits.layers] == [32, 10] and digits.likelihood == Categorical(10)
    assert digits.input_dim == 64


@pytest.mark.parametrize("fmt", ["toml", "json"])
def test_every_prior_and_override_round_trips(fmt, tmp_path):
    spec = Network(
        [
            Dense(4, "relu", prior=Hierarchical(0.5, "half_cauchy", fan_in=False), name="first"),
            Dense(3, "gelu", bias=False, prior=Normal(2.0, mu=0.25)),
            Dense(1, "identity", bias_prior=FanInNormal(1.5)),
        ],
        NormalLikelihood(sigma_prior=2.5),
        prior=Hierarchical(1.0, "exponential"),
        bias_prior=Normal(0.3),
        input_dim=7,
        name="everything",
    )
    path = tmp_path / f"spec.{fmt}"
    dump_spec(spec, path)
    assert load_spec(path) == spec
    assert dumps_spec(load_spec(path), fmt) == path.read_text(encoding="utf-8")
    data = spec_to_dict(spec)
    assert data["schema_version"] == SCHEMA_VERSION
    first = data["layers"][0]["prior"]
    assert {k: first[k] for k in ("kind", "scale", "hyperprior", "fan_in")} == {
        "kind": "hierarchical", "scale": 0.5, "hyperprior": "half_cauchy", "fan_in": False
    }


def test_newer_schema_version_is_a_clear_error(tmp_path):
    with pytest.raises(SpecError, match=rf"schema_version {SCHEMA_VERSION + 1}, newer than the {SCHEMA_VERSION}.*upgrade bnn_ppl"):
        spec_from_dict(_minimal(schema_version=SCHEMA_VERSION + 1))
    path = tmp_path / "future.json"
    path.write_text(json.dumps(_minimal(schema_version=99)))
    with pytest.raises(SpecError, match="future.json.*schema_version 99"):
        load_spec(path)


@pytest.mark.parametrize(
    ("data", "fragments"),
    [
        (_minimal(layerz=[]), ["The spec", "unknown field(s) ['layerz']", "'layers'"]),
        (_minimal(layers=[{"units": 1, "activation": "identity", "foo": 1}]), ["layers[0]", "['foo']", "'units'"]),
        (_minimal(likelihood={"kind": "bernoulli", "p": 1}), ["likelihood", "['p']"]),
        (_minimal(prior={"kind": "normal", "sigma": 1.0, "scale": 2.0}), ["prior", "['scale']", "'sigma'"]),
        (_minimal(likelihood={"kind": "poisson"}), ["likelihood.kind", "'bernoulli'", "'categorical'", "Got 'poisson'"]),
        (_minimal(likelihood="bernoulli"), ["likelihood", "'kind'"]),
        (_minimal(schema_version="1"), ["'schema_version'", "positive integer", "Got '1'"]),
        (_minimal(layers={"units": 1}), ["'layers'", "array of tables"]),
        (_minimal(layers=[{"kind": "conv", "units": 1}]), ["layers[0].kind", "'dense'", "Got 'conv'"]),
        (_minimal(layers=[{"activation": "identity"}]), ["layers[0]", "missing", "['units']"]),
        (_minimal(input_dim="2"), ["'input_dim'", "Got '2'"]),
        (_minimal(layers=[{"units": 0}]), ["layers[0]: ", "'units'", "Got 0"]),
        (_minimal(layers=[{"units": 1, "activation": "identity", "prior": {"kind": "normal", "sigma": -1}}]),
         ["layers[0].prior: ", "'sigma'", "Got -1"]),
        (_minimal(prior={"kind": "fan_in_normal", "scale": 0}), ["prior: ", "'scale'", "Got 0"]),
        ({"layers": [], "likelihood": {"kind": "bernoulli"}}, ["missing", "['schema_version']"]),
        ([1, 2], ["must be a table"]),
    ],
)
def test_bad_spec_dicts_raise_naming_the_field(data, fragments):
    with pytest.raises(SpecError) as info:
        spec_from_dict(data)
    for fragment in fragments:
        assert fragment in str(info.value), f"{fragment!r} missing from: {info.value}"


def test_numpy_numbers_are_stored_as_python_numbers(tmp_path):
    np = pytest.importorskip("numpy")
    spec = Network([Dense(np.int64(3)), Dense(np.int64(4), "identity")], Categorical(np.int64(4)),
                   prior=Normal(np.float32(0.5), mu=np.array(0.25)))
    assert type(spec.likelihood.n_classes) is int and type(spec.prior.sigma) is float and spec.prior.mu == 0.25
    assert spec.with_prior_scale(np.float32(2.0)).prior == Normal(1.0, mu=0.25)
    assert spec.n_params(np.int64(2)) == spec.n_params((2,)) == 2 * 3 + 3 + 3 * 4 + 4
    dump_spec(spec, tmp_path / "np.toml")  # numpy numbers would not serialise
    assert load_spec(tmp_path / "np.toml") == spec


def test_file_errors(tmp_path):
    with pytest.raises(SpecError, match="No spec file at"):
        load_spec(tmp_path / "missing.toml")
    with pytest.raises(SpecError, match=r"\.toml or \.json"):
        load_spec(tmp_path / "spec.yaml")
    broken = tmp_path / "broken.toml"
    broken.write_text("schema_version = = 1\n")
    with pytest.raises(SpecError, match="broken.toml is not valid TOML"):
        load_spec(broken)
    with pytest.raises(SpecError, match="'format' parameter must be 'toml' or 'json'"):
        dumps_spec(Network([OUT], Bernoulli()), "yaml")
    (tmp_path / "dir.toml").mkdir()
    with pytest.raises(SpecError, match="dir.toml' is a directory; give the path of a .toml or .json spec file"):
        load_spec(tmp_path / "dir.toml")
    twice = tmp_path / "twice.json"
    twice.write_text(dumps_spec(Network([OUT], Bernoulli()), "json").replace('"units": 1', '"units": 3, "units": 1'))
    with pytest.raises(SpecError, match="twice.json is not valid JSON: the key 'units' appears twice"):
        load_spec(twice)
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(SpecError, match="deep.json"):
        load_spec(deep)
    bom = tmp_path / "bom.toml"  # saved by a Windows editor with a byte-order mark
    bom.write_bytes(b"\xef\xbb\xbf" + (ROOT / "models/moons.toml").read_bytes())
    assert load_spec(bom) == load_spec(ROOT / "models/moons.toml")


def test_bad_field_in_file_names_the_file(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text((ROOT / "models/moons.toml").read_text().replace('"tanh"', '"swish"', 1))
    with pytest.raises(SpecError, match=r"bad.toml.*'activation'.*Got 'swish'"):
        load_spec(path)


def test_dump_is_atomic_and_leaves_no_temporary_files(tmp_path):
    spec = load_spec(ROOT / "models/moons.toml")
    path = tmp_path / "moons.toml"
    dump_spec(spec, path)
    dump_spec(spec, path)  # overwrite in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["moons.toml"]


def test_non_utf8_spec_file_is_a_spec_error(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes((ROOT / "models/moons.toml").read_text().replace('name = "moons"', 'name = "caf\u00e9"')
                     .encode("latin-1"))
    with pytest.raises(SpecError, match=r"latin1.toml is not UTF-8 text \(byte \d+: .*\); spec files must be UTF-8"):
        load_spec(path)


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600)])
def test_dumped_file_mode_follows_the_umask(tmp_path, umask, mode):
    spec = Network([OUT], Bernoulli())
    old = os.umask(umask)
    try:
        dump_spec(spec, tmp_path / "spec.toml")
    finally:
        os.umask(old)
    assert (tmp_path / "spec.toml").stat().st_mode & 0o777 == mode


def test_dump_into_a_missing_directory_names_the_path(tmp_path):
    target = tmp_path / "missing" / "spec.toml"
    with pytest.raises(FileNotFoundError) as info:
        dump_spec(Network([OUT], Bernoulli()), target)
    assert f"Cannot write {str(target)!r}: its directory {str(target.parent)!r} does not exist" in str(info.value)
    assert ".tmp" not in str(info.value) and list(tmp_path.iterdir()) == []


def test_submodules_are_attributes_of_a_fresh_import():
    code = ("import bnn_ppl as bp; assert callable(bp.predictive.trace_predictor) and callable(bp.io.load); "
            "assert callable(bp.arviz.to_datatree) and callable(bp.datasets.load_dataset)")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)

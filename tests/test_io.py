"""Model files: round trips (also in a fresh process), atomic writes, and real damaged files."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

import bnn_ppl as bp
from bnn_ppl import io as model_io
from bnn_ppl.errors import ModelFileError


@pytest.fixture(scope="module")
def clf_fit(moons, moons_spec):
    X_train, _, y_train, _ = moons
    built = bp.build_model(moons_spec, X_train[:200], y_train[:200], feature_names=["a", "b"])
    return bp.fit(built, n=300, random_seed=3, progressbar=False)


@pytest.fixture(scope="module")
def reg_fit():
    """Full-rank ADVI on a tiny minibatch regression: the L_tril and batch_size paths."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(40, 2))
    y = np.sin(X[:, 0]) + 0.1 * rng.normal(size=40)
    spec = bp.Network([bp.Dense(3), bp.Dense(1, "identity")], bp.NormalLikelihood(), name="tiny_reg")
    built = bp.build_model(spec, X, y, batch_size=10)
    return bp.fit(built, n=200, method="fullrank_advi", random_seed=4, progressbar=False)


@pytest.fixture(scope="module")
def saved(tmp_path_factory, clf_fit):
    path = tmp_path_factory.mktemp("io") / "moons.bnn"
    clf_fit.save(path, metadata={"note": "hello"})
    return path


def _members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def _rewrite(path: Path, members: dict[str, bytes], update_checksums: bool) -> None:
    members = dict(members)
    if update_checksums:
        manifest = json.loads(members["manifest.json"])
        manifest["members"] = {n: hashlib.sha256(d).hexdigest() for n, d in members.items() if n != "manifest.json"}
        members["manifest.json"] = json.dumps(manifest).encode()
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)


def test_round_trip_predictions_equal(clf_fit, saved, moons):
    X_test = moons[1][:60]
    loaded, meta = model_io.load_with_metadata(saved)
    assert meta == {"note": "hello"}
    before = clf_fit.predictor().sample(X_test, draws=50, random_seed=11)
    after = loaded.predictor().sample(X_test, draws=50, random_seed=11)
    np.testing.assert_array_equal(before, after)
    np.testing.assert_array_equal(loaded.losses, clf_fit.losses)
    assert loaded.spec == clf_fit.spec
    assert (loaded.method, loaded.engine, loaded.n_steps, loaded.random_seed) == (
        clf_fit.method, clf_fit.engine, clf_fit.n_steps, 3)
    assert list(loaded.built.model.coords["dense_0_in"]) == ["a", "b"]
    np.testing.assert_array_equal(loaded.built.X_data.get_value(), clf_fit.built.X_data.get_value())


def test_file_holds_only_json_and_npy_with_versions(saved):
    members = _members(saved)
    assert set(members) == {"manifest.json", "spec.json", "fit.json", "metadata.json", "losses.npy",
                            "params/mu.npy", "params/rho.npy", "data/X.npy", "data/y.npy"}
    manifest = json.loads(members["manifest.json"])
    assert manifest["format"] == "bnn_ppl.model" and manifest["format_version"] == model_io.FORMAT_VERSION
    assert manifest["versions"]["bnn_ppl"] == bp.__version__
    assert manifest["versions"]["pymc"].startswith("6.")
    assert manifest["members"]["params/mu.npy"] == hashlib.sha256(members["params/mu.npy"]).hexdigest()


def test_fullrank_minibatch_round_trip_without_data(reg_fit, tmp_path):
    path = reg_fit.save(tmp_path / "reg.bnn", include_data=False)
    assert "data/X.npy" not in _members(path)
    loaded = bp.load(path)
    assert loaded.method == "fullrank_advi" and loaded.built.batch_size == 10 and loaded.built.n_obs == 40
    X = np.linspace(-2, 2, 14).reshape(7, 2)
    a, b = reg_fit.predictor(), loaded.predictor()
    np.testing.assert_array_equal(a.sample(X, draws=20, random_seed=2), b.sample(X, draws=20, random_seed=2))
    np.testing.assert_array_equal(a.sample_noise(20, random_seed=2), b.sample_noise(20, random_seed=2))


def test_fresh_process_predictions_equal(clf_fit, saved, moons, tmp_path):
    X_test = moons[1][:40]
    np.save(tmp_path / "X.npy", X_test)
    code = (
        "import sys, numpy as np, bnn_ppl as bp;"
        "r = bp.load(sys.argv[1]);"
        "np.save(sys.argv[3], r.predictor().sample(np.load(sys.argv[2]), draws=30, random_seed=5))"
    )
    subprocess.run([sys.executable, "-c", code, str(saved), str(tmp_path / "X.npy"), str(tmp_path / "out.npy")],
                   check=True, capture_output=True, timeout=300)
    expected = clf_fit.predictor().sample(X_test, draws=30, random_seed=5)
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), expected)


def test_interrupted_save_leaves_old_file_intact(clf_fit, saved, tmp_path, monkeypatch):
    path = tmp_path / "model.bnn"
    path.write_bytes(saved.read_bytes())
    original = path.read_bytes()

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(model_io.os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        clf_fit.save(path)
    assert path.read_bytes() == original
    assert os.listdir(tmp_path) == ["model.bnn"]  # no temporary file left behind


@pytest.mark.parametrize("damage, message", [
    ("truncated", "truncated or corrupted"),
    ("flipped_byte", "corrupted"),
    ("not_a_zip", "truncated or corrupted"),
    ("zip_without_manifest", "not a bnn_ppl model"),
    ("tampered_params", "tampered with or corrupted: the SHA-256 checksum of params/mu.npy"),
    ("extra_member", "tampered with: members ['evil.py']"),
    ("newer_format", "format_version 99, newer than the 1 this bnn_ppl reads"),
    ("invalid_spec", "the saved spec no longer validates"),
    ("pickled_array", "params/mu.npy is not a valid .npy array"),
    ("bad_json", "spec.json is not valid JSON"),
])
def test_damaged_files_raise_clear_errors(saved, tmp_path, damage, message):
    path = tmp_path / "damaged.bnn"
    raw = saved.read_bytes()
    members = _members(saved)
    if damage == "truncated":
        path.write_bytes(raw[: len(raw) // 2])
    elif damage == "flipped_byte":
        data = bytearray(raw)
        offset = raw.index(b"PK\x03\x04", 10) + 60  # inside the second member's data
        data[offset] ^= 0xFF
        path.write_bytes(bytes(data))
    elif damage == "not_a_zip":
        path.write_text("this is not a model")
    elif damage == "zip_without_manifest":
        _rewrite(path, {k: v for k, v in members.items() if k != "manifest.json"}, update_checksums=False)
    elif damage == "tampered_params":
        mu = np.load(io.BytesIO(members["params/mu.npy"]))
        buf = io.BytesIO()
        np.save(buf, mu + 1.0)
        _rewrite(path, {**members, "params/mu.npy": buf.getvalue()}, update_checksums=False)
    elif damage == "extra_member":
        _rewrite(path, {**members, "evil.py": b"print('hi')"}, update_checksums=False)
    elif damage == "newer_format":
        manifest = json.loads(members["manifest.json"])
        manifest["format_version"] = 99
        _rewrite(path, {**members, "manifest.json": json.dumps(manifest).encode()}, update_checksums=False)
    elif damage == "invalid_spec":
        spec = json.loads(members["spec.json"])
        spec["layers"][0]["units"] = 0
        _rewrite(path, {**members, "spec.json": json.dumps(spec).encode()}, update_checksums=True)
    elif damage == "pickled_array":
        buf = io.BytesIO()
        np.save(buf, np.array([{"x": 1}], dtype=object), allow_pickle=True)
        _rewrite(path, {**members, "params/mu.npy": buf.getvalue()}, update_checksums=True)
    elif damage == "bad_json":
        _rewrite(path, {**members, "spec.json": b"{not json"}, update_checksums=True)
    with pytest.raises(ModelFileError) as info:
        bp.load(path)
    assert message in str(info.value)
    assert str(path) in str(info.value)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ModelFileError, match="No model file at"):
        bp.load(tmp_path / "nope.bnn")
    with pytest.raises(ModelFileError, match="is a directory"):
        bp.load(tmp_path)

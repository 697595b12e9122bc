"""Model files: round trips (also in a fresh process), atomic writes, and real damaged files."""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import subprocess
import sys
import time
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
    return bp.fit(built, n=300, method="advi", random_seed=3, progressbar=False)


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


def _rewrite(path: Path, members: dict[str, bytes], update_checksums: bool,
             compression: int = zipfile.ZIP_STORED) -> None:
    members = dict(members)
    if update_checksums:
        manifest = json.loads(members["manifest.json"])
        manifest["members"] = {n: hashlib.sha256(d).hexdigest() for n, d in members.items() if n != "manifest.json"}
        members["manifest.json"] = json.dumps(manifest).encode()
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)


def _edited(saved: Path, out: Path, name: str, edit) -> Path:
    """A copy of ``saved`` whose member ``name`` is ``edit(old bytes)`` (None: removed), with the
    manifest checksums recomputed: an edit that the checksums do not catch."""
    members = _members(saved)
    new = edit(members.pop(name))
    if new is not None:
        members[name] = new
    _rewrite(out, members, update_checksums=True)
    return out


def _edit_fit(**changes):
    """An ``edit`` for fit.json: set fields (a value of ``...`` removes the field)."""
    def edit(data: bytes) -> bytes:
        info = json.loads(data)
        for key, value in changes.items():
            if value is ...:
                del info[key]
            else:
                info[key] = value
        return json.dumps(info).encode()
    return edit


def _nan_first(data: bytes) -> bytes:
    arr = np.load(io.BytesIO(data))
    arr[0] = np.nan
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def _forbid_decompression(monkeypatch) -> None:
    """From now on, fail the test if any zip member is decompressed."""
    def refuse(self, *args, **kwargs):
        raise AssertionError("a member was decompressed")

    monkeypatch.setattr(zipfile.ZipFile, "read", refuse)
    monkeypatch.setattr(zipfile.ZipFile, "open", refuse)


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
    # The stand-in rows are built with n_obs from the file: the likelihood keeps total_size = 40
    # (issue 12 item 21: n_obs used to be patched onto the built model after a build on 10 rows).
    model = loaded.built.model
    point = model.initial_point()
    obs_logp = float(model.compile_logp(vars=[model["y_obs"]])(point))
    stand_in = bp.build_model(loaded.spec, loaded.built.X_data.get_value(), loaded.built.y_data.get_value())
    full_batch_logp = float(stand_in.model.compile_logp(vars=[stand_in.model["y_obs"]])(point))
    np.testing.assert_allclose(obs_logp, 40 / 10 * full_batch_logp, rtol=1e-6)
    X = np.linspace(-2, 2, 14).reshape(7, 2)
    a, b = reg_fit.predictor(), loaded.predictor()
    np.testing.assert_array_equal(a.sample(X, draws=20, random_seed=2), b.sample(X, draws=20, random_seed=2))
    np.testing.assert_array_equal(a.sample_noise(20, random_seed=2), b.sample_noise(20, random_seed=2))
    # what needs the training rows says so, instead of using the stand-in rows as training data
    for call, purpose in ((lambda: loaded.to_datatree(draws=5), "to_datatree without X"),
                          (lambda: loaded.description_length(draws=5), "description_length"),
                          (lambda: bp.fit(loaded.built, n=5, progressbar=False), "fit")):
        with pytest.raises(bp.DataError, match=f"saved without its training data .include_data=False.; {purpose} "
                                               "needs its 40 training rows"):
            call()
    assert loaded.to_datatree(draws=5, X=X, y=X[:, 0], random_seed=0).observed_data.sizes["obs"] == 7
    with pytest.raises(ModelFileError, match="save it with include_data=False too"):
        loaded.save(tmp_path / "again.bnn")
    again = bp.load(loaded.save(tmp_path / "again.bnn", include_data=False))
    np.testing.assert_array_equal(again.predictor().sample(X, draws=20, random_seed=2), b.sample(X, draws=20,
                                                                                                  random_seed=2))


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
    ("encrypted_flag", "truncated or corrupted"),
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
    elif damage == "encrypted_flag":  # one bit: the central directory marks every member encrypted
        data = bytearray(raw)
        start = 0
        while (start := raw.find(b"PK\x01\x02", start)) >= 0:
            data[start + 8] |= 1
            start += 4
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


# ---------------------------------------------------------------- zip bombs
def _declare_size(raw: bytes, member: str, size: int) -> bytes:
    """``raw`` with the uncompressed size of ``member`` in the zip's central directory set to ``size``."""
    data = bytearray(raw)
    end = raw.rindex(b"PK\x05\x06")  # end of central directory record
    offset = struct.unpack_from("<I", raw, end + 16)[0]  # first central directory entry
    while True:
        name_len, extra_len, comment_len = struct.unpack_from("<HHH", raw, offset + 28)
        if raw[offset + 46: offset + 46 + name_len] == member.encode():
            struct.pack_into("<I", data, offset + 24, size)
            return bytes(data)
        offset += 46 + name_len + extra_len + comment_len


def test_huge_declared_size_is_refused_before_decompressing(saved, tmp_path, monkeypatch):
    path = tmp_path / "bomb.bnn"
    path.write_bytes(_declare_size(saved.read_bytes(), "data/X.npy", 0xF000_0000))  # 3.75 GiB
    with zipfile.ZipFile(path) as zf:
        total = sum(info.file_size for info in zf.infolist())
    _forbid_decompression(monkeypatch)
    start = time.perf_counter()
    with pytest.raises(ModelFileError) as info:
        bp.load(path)
    assert time.perf_counter() - start < 0.5
    message = str(info.value)
    assert f"{path} declares {total:,} bytes of uncompressed members" in message
    assert "more than bnn_ppl.io.MAX_TOTAL_BYTES = 2,147,483,648" in message
    assert "refused before decompressing" in message and "raise bnn_ppl.io.MAX_TOTAL_BYTES" in message


def test_total_size_limit_can_be_raised(saved, monkeypatch):
    monkeypatch.setattr(model_io, "MAX_TOTAL_BYTES", 1000)
    with pytest.raises(ModelFileError, match="more than bnn_ppl.io.MAX_TOTAL_BYTES = 1,000;"):
        bp.load(saved)
    monkeypatch.setattr(model_io, "MAX_TOTAL_BYTES", 2**31)
    bp.load(saved)


def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def _deflated_with_data(saved: Path, path: Path, X: np.ndarray, y: np.ndarray | None = None) -> Path:
    members = {**_members(saved), "data/X.npy": _npy(X)}
    if y is not None:
        members["data/y.npy"] = _npy(y)
        members["fit.json"] = _edit_fit(n_obs=len(y))(members["fit.json"])
    _rewrite(path, members, update_checksums=True, compression=zipfile.ZIP_DEFLATED)
    return path


def test_absurd_compression_ratio_is_refused_before_decompressing(saved, tmp_path, monkeypatch):
    """32 MiB of zeros deflate to 32 KiB (ratio ~1000): a zip bomb in miniature, checksums correct."""
    path = _deflated_with_data(saved, tmp_path / "zeros.bnn", np.zeros((2**21, 2)))
    _forbid_decompression(monkeypatch)
    with pytest.raises(ModelFileError) as info:
        bp.load(path)
    message = str(info.value)
    assert f"{path}: the member data/X.npy declares 33,554,560 bytes compressed into" in message
    assert "more than bnn_ppl.io.MAX_COMPRESSION_RATIO = 100" in message


def test_small_members_may_compress_well(saved, tmp_path):
    """Constant columns or sorted labels compress 100x and more; members under 16 MiB are not held to the ratio."""
    y = np.repeat(np.array([0, 1], dtype=np.int8), 2000)
    path = _deflated_with_data(saved, tmp_path / "zeros.bnn", np.zeros((4000, 2)), y)
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("data/X.npy")
    assert info.file_size / info.compress_size > model_io.MAX_COMPRESSION_RATIO
    assert bp.load(path).built.n_obs == 4000


# ---------------------------------------------------------------- edited files
@pytest.mark.parametrize("member, edit, fragments", [
    ("fit.json", _edit_fit(batch_size=...), ["fit.json lacks the field 'batch_size'", "positive integer or null"]),
    ("fit.json", _edit_fit(n_obs="abc"), ["the field 'n_obs' of fit.json must be a positive integer", "Got 'abc'"]),
    ("fit.json", _edit_fit(n_obs=0), ["'n_obs'", "Got 0"]),
    ("fit.json", _edit_fit(timings=[1]), ["the field 'timings' of fit.json must be an object of numbers", "Got [1]"]),
    ("fit.json", _edit_fit(timings={"fit_s": "slow"}), ["'timings'"]),
    ("fit.json", _edit_fit(interrupted="no"), ["'interrupted'", "true or false", "Got 'no'"]),
    ("fit.json", _edit_fit(feature_names={"a": 1}), ["'feature_names'", "a list of strings"]),
    ("fit.json", _edit_fit(ordering=[["dense_0_w", "2x3"]]), ["'ordering'", "[name, shape] pairs"]),
    ("fit.json", _edit_fit(method=["advi"]), ["'method'", "one of ['advi', 'fullrank_advi', 'lowrank_advi', 'unitrank_advi']"]),
    ("fit.json", _edit_fit(learning_rate=float("nan")), ["'learning_rate'", "positive number", "Got nan"]),
    ("fit.json", _edit_fit(extra=1), ["fit.json has unknown field(s) ['extra']"]),
    ("fit.json", lambda data: b"[1, 2]", ["fit.json must hold a JSON object", "Got a list ([1, 2])"]),
    ("spec.json", lambda data: b'"moons"', ["spec.json must hold a JSON object", "Got a str"]),
    ("metadata.json", lambda data: b"[]", ["metadata.json must hold a JSON object"]),
    ("metadata.json", lambda data: None, ["the member metadata.json is missing"]),
    ("fit.json", lambda data: None, ["the member fit.json is missing"]),
    ("params/mu.npy", _nan_first, ["params/mu.npy holds 1 NaN or infinite value(s)", "cannot predict"]),
])
def test_edited_files_raise_model_file_errors_naming_member_and_field(saved, tmp_path, member, edit, fragments):
    path = _edited(saved, tmp_path / "edited.bnn", member, edit)
    with pytest.raises(ModelFileError) as info:
        bp.load(path)
    for fragment in [str(path), *fragments]:
        assert fragment in str(info.value), f"{fragment!r} missing from: {info.value}"


def test_file_without_lr_floor_loads_with_a_constant_step_size(saved, tmp_path):
    """Files written before lr_floor existed lack the field; it defaults to 1.0."""
    assert bp.load(_edited(saved, tmp_path / "old.bnn", "fit.json", _edit_fit(lr_floor=...))).lr_floor == 1.0


def test_malformed_manifest_versions_give_a_model_file_error(saved, tmp_path):
    members = _members(saved)
    manifest = json.loads(members["manifest.json"])
    manifest.update(format_version=99, versions=["not", "a", "dict"])
    _rewrite(tmp_path / "m.bnn", {**members, "manifest.json": json.dumps(manifest).encode()}, update_checksums=False)
    with pytest.raises(ModelFileError, match="format_version 99.*saved by bnn_ppl unknown"):
        bp.load(tmp_path / "m.bnn")


# ---------------------------------------------------------------- writing: permissions, directories
@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_saved_file_mode_follows_the_umask(clf_fit, tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        path = clf_fit.save(tmp_path / "m.bnn")
        path = clf_fit.save(path)  # replacing an existing file, too
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == mode


def test_saving_into_a_missing_directory_names_the_path(clf_fit, tmp_path):
    target = tmp_path / "no_such_dir" / "m.bnn"
    with pytest.raises(FileNotFoundError) as info:
        clf_fit.save(target)
    message = str(info.value)
    assert f"Cannot write {str(target)!r}" in message and f"directory {str(target.parent)!r} does not exist" in message
    assert ".tmp" not in message
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(NotADirectoryError, match="a_file' is a file, not a directory"):
        clf_fit.save(tmp_path / "a_file" / "m.bnn")
    (tmp_path / "out").mkdir()
    with pytest.raises(IsADirectoryError, match=r"out' is a directory; give a file name inside it, e.g. .*model.bnn"):
        clf_fit.save(tmp_path / "out")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a_file", "out"]


def test_save_refuses_user_added_variables_and_swapped_in_rows(tmp_path):
    import pymc as pm

    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 2))
    y = (X[:, 0] > 0).astype(int)
    spec = bp.Network([bp.Dense(2), bp.Dense(1, "identity")], bp.Bernoulli())
    built = bp.build_model(spec, X, y)
    with built.model:
        pm.Normal("my_extra", 0.0, 1.0)
    result = bp.fit(built, n=50, method="advi", random_seed=0, progressbar=False)
    with pytest.raises(bp.ModelFileError, match=r"\['my_extra'\].*added to built.model"):
        result.save(tmp_path / "extra.bnn")
    assert not list(tmp_path.iterdir())  # nothing half-written
    built = bp.build_model(spec, X, y)
    result = bp.fit(built, n=50, method="advi", random_seed=0, progressbar=False)
    with built.model:
        pm.set_data({"X": X[:7], "y": y[:7]})
    with pytest.raises(bp.ModelFileError, match=r"hold \[7\] rows but it was fitted on 30"):
        result.save(tmp_path / "swapped.bnn")
    with built.model:
        pm.set_data({"X": X, "y": y})
    loaded = bp.load(result.save(tmp_path / "ok.bnn"))
    assert loaded.stop_reason == "completed"


def test_a_models_prior_scale_survives_save_load_and_full_batch(tmp_path):
    """build_model(prior_scale=c): a loaded fit and full_batch() keep the scaled prior (both rebuilt the unscaled one)."""
    import pymc as pm

    rng = np.random.default_rng(2)
    X = rng.normal(size=(30, 2))
    y = (X[:, 0] > 0).astype(int)
    spec = bp.Network([bp.Dense(2), bp.Dense(1, "identity")], bp.Bernoulli())
    built = bp.build_model(spec, X, y, batch_size=10, prior_scale=3.0)
    result = bp.fit(built, n=50, method="advi", random_seed=0, progressbar=False)
    point = {name: np.full(np.shape(value), 0.3) for name, value in built.model.initial_point().items()}
    priors = lambda model: [v for v in model.free_RVs]  # noqa: E731
    logp = lambda model: float(model.compile_logp(vars=priors(model))(point))  # noqa: E731
    scaled = bp.build_model(spec.with_prior_scale(3.0), X, y)
    assert logp(built.full_batch().model) == pytest.approx(logp(scaled.model))
    assert built.full_batch().prior_scale == 3.0
    result.save(tmp_path / "scaled.bnn")
    loaded = bp.load(tmp_path / "scaled.bnn")
    assert loaded.built.prior_scale == 3.0
    assert logp(loaded.built.model) == pytest.approx(logp(built.model))
    assert loaded.description_length(draws=20, random_seed=0).total == pytest.approx(
        result.description_length(draws=20, random_seed=0).total)
    with built.model:
        pm.set_data({"prior_scale": 0.5})  # the value now, as the model is now
    assert built.full_batch().prior_scale == 0.5
    bad = _edited(tmp_path / "scaled.bnn", tmp_path / "bad.bnn", "fit.json", _edit_fit(prior_scale=-1))
    with pytest.raises(ModelFileError, match="'prior_scale' of fit.json must be a positive number"):
        bp.load(bad)

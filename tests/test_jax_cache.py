"""The fit loop's exported programs kept on disk (``jax_cache.Persisted``): a new process runs them
and gets the same numbers; a damaged, foreign or stale file is never used."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

import bnn_ppl as bp

pytest.importorskip("jax")
pytest.importorskip("flatbuffers")

from bnn_ppl.inference.engines import jax_cache, jax_engine  # noqa: E402

SPEC = bp.Network([bp.Dense(3, "tanh"), bp.Dense(1, "identity")], bp.Bernoulli())


@pytest.fixture(scope="module")
def built():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 2))
    return bp.build_model(SPEC, X, (X[:, 0] > 0).astype(int))


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """The export cache in a new folder, and the in-process cache of compiled loops emptied."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("BNN_PPL_JAX_CACHE", raising=False)
    jax_engine._COMPILED.clear()
    yield tmp_path / "bnn_ppl" / "jax-export"
    jax_engine._COMPILED.clear()


def _fit(built, n=300):
    result = bp.fit(built, n, random_seed=0, progressbar=False)
    return result.losses, result.params()


def _as_a_new_process(monkeypatch):
    """Forget the compiled loops, and fail if the program is built again (not loaded)."""
    jax_engine._COMPILED.clear()
    monkeypatch.setattr(jax_engine, "_build_step", lambda *a, **k: pytest.fail("the kept program was built again"))


def _assert_same_fit(a, b):
    np.testing.assert_array_equal(a[0], b[0])
    for name in a[1]:
        np.testing.assert_array_equal(a[1][name], b[1][name])


def test_a_new_process_runs_the_kept_program_and_gets_the_same_numbers(built, folder, monkeypatch):
    first = _fit(built)
    (kept,) = folder.glob("*.jaxexport")  # one chunk length: one program
    with monkeypatch.context() as m:
        _as_a_new_process(m)
        _assert_same_fit(_fit(built), first)
    # the same numbers as the program compiled in place, without any cache
    jax_engine._COMPILED.clear()
    monkeypatch.setenv("BNN_PPL_JAX_CACHE", "0")
    _assert_same_fit(_fit(built), first)
    assert list(folder.glob("*.jaxexport")) == [kept]


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_a_damaged_file_is_built_anew_and_replaced(built, folder, damage, monkeypatch):
    first = _fit(built)
    (kept,) = folder.glob("*.jaxexport")
    blob = kept.read_bytes()
    kept.write_bytes({"truncated": blob[: len(blob) // 2], "garbage": b"\x00not an export" * 50, "empty": b""}[damage])
    jax_engine._COMPILED.clear()
    _assert_same_fit(_fit(built), first)
    assert len(kept.read_bytes()) > len(blob) // 2  # replaced: the next process loads it
    with monkeypatch.context() as m:
        _as_a_new_process(m)
        _assert_same_fit(_fit(built), first)


def test_another_programs_file_under_this_name_is_not_run(built, folder):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(40, 3))
    other = bp.build_model(SPEC, X, (X[:, 0] > 0).astype(int))
    _fit(other)
    (foreign,) = folder.glob("*.jaxexport")
    jax_engine._COMPILED.clear()
    first = _fit(built)
    (kept,) = set(folder.glob("*.jaxexport")) - {foreign}
    kept.write_bytes(foreign.read_bytes())  # a program for 3 features, 40 rows where 2 and 60 are expected
    jax_engine._COMPILED.clear()
    _assert_same_fit(_fit(built), first)


def test_another_prior_is_another_program_even_under_a_copied_file(built, folder):
    first = _fit(built)
    (narrow,) = folder.glob("*.jaxexport")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 2))
    wider = bp.build_model(bp.Network(SPEC.layers, bp.Bernoulli(), prior=bp.Normal(3.0)), X, (X[:, 0] > 0).astype(int))
    jax_engine._COMPILED.clear()
    second = _fit(wider)
    (wide,) = set(folder.glob("*.jaxexport")) - {narrow}
    assert not np.array_equal(first[0], second[0])
    # the same inputs, another program: a file copied over this one's name is not run
    wide.write_bytes(narrow.read_bytes())
    jax_engine._COMPILED.clear()
    _assert_same_fit(_fit(wider), second)


def test_code_registered_from_outside_keeps_nothing_on_disk(folder, monkeypatch):
    # the kept program's key names the activation, not its code: an edited one would run stale
    from bnn_ppl.spec import ACTIVATIONS
    from bnn_ppl.spec.activations import Activation

    monkeypatch.setitem(ACTIVATIONS._items, "doubled", Activation("2x", lambda xp, x: 2 * x))
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 2))
    mine = bp.build_model(bp.Network([bp.Dense(3, "doubled"), bp.Dense(1, "identity")], bp.Bernoulli()), X,
                          (X[:, 0] > 0).astype(int))
    assert np.isfinite(_fit(mine)[0]).all()
    assert not folder.exists() or not list(folder.glob("*.jaxexport"))


def test_a_fifo_or_device_at_a_files_path_is_not_read(tmp_path):
    import jax

    fifo = tmp_path / "chunk.jaxexport"
    os.mkfifo(fifo)  # open() of a FIFO without a writer would block
    tree = jax.tree.structure(((), {}))
    assert jax_cache._load(fifo, b"0" * 32, [], tree) is None
    zero = tmp_path / "zero.jaxexport"
    zero.symlink_to("/dev/zero")
    assert jax_cache._load(zero, b"0" * 32, [], tree) is None


def test_a_killed_writers_part_file_is_removed_once_stale(built, folder):
    folder.mkdir(parents=True)
    stale, fresh = folder / ".fused-x.jaxexport.1.2.part", folder / ".fused-y.jaxexport.3.4.part"
    for part in (stale, fresh):
        part.write_bytes(b"half a file")
    old = time.time() - 2 * jax_cache._STALE_PART_S
    os.utime(stale, (old, old))
    _fit(built)
    assert not stale.exists() and fresh.exists()


def test_the_folder_keeps_the_most_recent_programs_within_its_size_bound(built, folder, monkeypatch):
    _fit(built)
    (older,) = folder.glob("*.jaxexport")
    monkeypatch.setattr(jax_cache, "EXPORT_CACHE_BYTES", older.stat().st_size + 1)
    jax_engine._COMPILED.clear()
    _fit(built, n=200)  # another chunk length: another program
    (newer,) = folder.glob("*.jaxexport")
    assert newer != older


def test_without_serialisation_the_fit_runs_and_keeps_nothing(built, folder, monkeypatch):
    import jax

    def refuse(*args, **kwargs):
        raise ImportError("Please install 'flatbuffers' in order to use Exported serialization")

    monkeypatch.setattr(jax.export, "export", refuse)
    losses, _ = _fit(built)
    assert np.isfinite(losses).all() and not list(folder.glob("*.jaxexport"))


def test_a_key_part_without_a_stable_repr_is_not_kept():
    assert jax_cache.program_key(object()) is None
    assert jax_cache.program_key(("spec", 3)) == jax_cache.program_key(("spec", 3))
    assert jax_cache.program_key(("spec", 3)) != jax_cache.program_key(("spec", 4))


@pytest.mark.parametrize("value", ["0", "false", "OFF", " no "])
def test_the_cache_is_off_with_bnn_ppl_jax_cache_0(monkeypatch, value):
    monkeypatch.setenv("BNN_PPL_JAX_CACHE", value)
    assert jax_cache.cache_root() is None
    monkeypatch.setenv("BNN_PPL_JAX_CACHE", "1")
    assert jax_cache.cache_root() is not None


def test_a_folder_is_trimmed_least_recently_used_first(tmp_path):
    # XLA's folder too: JAX's own bound locks the folder and lists it on every write
    for age, name in enumerate(["newest", "middle", "oldest"]):
        entry = tmp_path / f"{name}-cache"
        entry.write_bytes(b"x" * 100)
        past = time.time() - 1000 * (age + 1)
        os.utime(entry, (past, past))
    jax_cache._trim(tmp_path, 250)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["middle-cache", "newest-cache"]
    jax_cache._trim(tmp_path / "missing", 0)  # no folder yet: nothing to do

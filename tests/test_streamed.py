"""Training data larger than memory: memory-mapped .npy and dask arrays stream minibatches
chunk by chunk; the fit is the in-memory fit, the predictor reads test rows by chunks."""

from __future__ import annotations

import os

import numpy as np
import pytest

import bnn_ppl as bp
from bnn_ppl.compile import streamed
from bnn_ppl.datasets import write_large_synthetic
from bnn_ppl.errors import DataError, ModelFileError, ParameterError

SPEC = bp.Network([bp.Dense(6), bp.Dense(3, "identity")], bp.Categorical(3))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return write_large_synthetic(tmp_path_factory.mktemp("large"), rows=3000, features=5, classes=3)


@pytest.fixture(scope="module")
def in_memory(files):
    X, y = files
    return bp.fit(bp.build_model(SPEC, np.asarray(X), np.asarray(y), batch_size=40), n=2500, method="advi",
                  random_seed=2, progressbar=False)


def test_a_memory_mapped_fit_is_the_in_memory_fit(files, in_memory, monkeypatch):
    X, y = files
    monkeypatch.setattr(streamed, "BLOCK_BYTES", 4096)  # several validation blocks
    built = bp.build_model(SPEC, X, y, batch_size=40)
    assert built.source is not None and built.n_obs == 3000 and built.X_data.get_value().shape == (40, 5)
    result = bp.fit(built, n=2500, method="advi", random_seed=2, progressbar=False)  # 3 chunks, each read ahead
    np.testing.assert_allclose(result.losses, in_memory.losses, rtol=1e-12)
    np.testing.assert_allclose(result.params()["mu"], in_memory.params()["mu"], atol=1e-12)
    # the predictor reads memory-mapped test rows chunk by chunk, with the same answers
    monkeypatch.setattr(result.predictor(), "MIN_CHUNK_ROWS", 256)
    np.testing.assert_array_equal(result.predictor().predict(X, random_seed=0),
                                  in_memory.predictor().predict(np.asarray(X), random_seed=0))
    assert result.evaluate(X, y).accuracy == pytest.approx(in_memory.evaluate(np.asarray(X), np.asarray(y)).accuracy)
    mem = in_memory.to_datatree(draws=20, random_seed=0)
    # the DataTree of a streamed fit covers every training row (not the containers' stand-in batch)
    dt = result.to_datatree(draws=20, random_seed=0)
    assert dict(dt.posterior_predictive["y_obs"].sizes) == {"chain": 1, "draw": 20, "obs": 3000}
    np.testing.assert_array_equal(dt.observed_data["y_obs"].values, np.asarray(y))
    assert "constant_data" not in dt.children  # a streamed X is not copied into the tree
    np.testing.assert_allclose(dt.posterior["dense_0_w"].values, mem.posterior["dense_0_w"].values, atol=1e-10)
    held = result.to_datatree(draws=5, X=X[:50], y=y[:50], random_seed=0)
    assert held.posterior_predictive.sizes["obs"] == 50 and "constant_data" not in held.children


def test_views_of_a_mapping_read_the_right_rows_from_the_file(files, tmp_path):
    X, _ = files
    rows = np.array([5, 0, 5, 999])
    for view, index in ((X, rows), (X[1000:], 1000 + rows), (X[::2], 2 * rows), (X[10:2010:2], 10 + 2 * rows)):
        assert streamed._file_rows(view) is not None  # read with pread, not through the mapping
        np.testing.assert_array_equal(streamed.row_source(view, None, "float64").read(rows), np.asarray(X)[index])
    assert streamed._file_rows(X[::-1]) is None and streamed._file_rows(np.asarray(X)) is None
    # a truncated file: a view's reads raise DataError (through the mapping they were a SIGBUS)
    short = tmp_path / "short.npy"
    short.write_bytes(open(X.filename, "rb").read())
    mapped = np.load(short, mmap_mode="r")[1000:]
    os.truncate(short, os.path.getsize(short) // 2)
    with pytest.raises(DataError, match="ended early .* was it truncated"):
        streamed.row_source(mapped, None, "float64", validate=False).read(np.array([1500]))


def test_copy_on_write_and_big_endian_mappings_give_their_values(files, tmp_path):
    X, y = files
    cow = np.load(X.filename, mmap_mode="c")
    cow[:, 0] = -cow[:, 0]  # in memory only: the file keeps the old values
    assert streamed._file_rows(cow) is None
    got = streamed.row_source(cow, None, "float64").read(np.arange(3))
    np.testing.assert_array_equal(got, np.asarray(cow)[:3])
    assert got[0, 0] == -X[0, 0] != 0
    np.save(tmp_path / "big.npy", np.asarray(X[:200]).astype(">f4"))
    big = np.load(tmp_path / "big.npy", mmap_mode="r")
    streamed_fit = bp.fit(bp.build_model(SPEC, big, y[:200], batch_size=40), n=30, method="advi", random_seed=2,
                          progressbar=False)
    in_memory = bp.fit(bp.build_model(SPEC, np.asarray(X[:200]), y[:200], batch_size=40), n=30, method="advi",
                       random_seed=2, progressbar=False)
    np.testing.assert_allclose(streamed_fit.losses, in_memory.losses, rtol=1e-6)


def test_a_dask_array_streams_too(files, in_memory):
    da = pytest.importorskip("dask.array")
    X, y = files
    result = bp.fit(bp.build_model(SPEC, da.from_array(np.asarray(X), chunks=700), y, batch_size=40), n=2500,
                    method="advi", random_seed=2, progressbar=False)
    np.testing.assert_allclose(result.losses, in_memory.losses, rtol=1e-12)
    unknown = da.from_array(np.asarray(X), chunks=700)
    unknown = unknown[unknown[:, 0] > -1e9]  # a boolean mask leaves the row count unknown (nan)
    with pytest.raises(DataError, match=r"dask array of unknown size \(nan, 5\); call X.compute_chunk_sizes"):
        bp.build_model(SPEC, unknown, y, batch_size=40)


class _Orthogonal:
    """zarr's interface as far as bnn_ppl uses it: shape, dtype, ``oindex[rows]``."""

    def __init__(self, array):
        self._array, self.shape, self.dtype = array, array.shape, array.dtype
        self.reads = 0

    @property
    def oindex(self):
        outer = self

        class _Index:
            def __getitem__(self, rows):
                outer.reads += 1
                return outer._array[rows]

        return _Index()


def test_a_zarr_like_array_is_read_through_oindex(files, in_memory):
    X, y = files
    source = _Orthogonal(np.asarray(X))
    result = bp.fit(bp.build_model(SPEC, source, y, batch_size=40), n=2500, method="advi", random_seed=2,
                    progressbar=False)
    np.testing.assert_allclose(result.losses, in_memory.losses, rtol=1e-12)
    assert source.reads >= 4  # validation, stand-in rows, three chunks


def test_streamed_models_refuse_what_needs_the_rows_in_memory(files, tmp_path):
    X, y = files
    built = bp.build_model(SPEC, X, y, batch_size=40)
    with pytest.raises(ParameterError, match="streams X from data larger than memory.*engine='jax'"):
        bp.fit(built, n=10, engine="numba", progressbar=False)
    with pytest.raises(ParameterError, match="one member"):
        bp.fit(built, n=10, ensemble=2, progressbar=False)
    result = bp.fit(built, n=20, method="advi", progressbar=False)
    with pytest.raises(ModelFileError, match="include_data=False"):
        result.save(tmp_path / "m.bnn")
    loaded = bp.load(result.save(tmp_path / "m.bnn", include_data=False))
    np.testing.assert_array_equal(loaded.predictor().predict(X[:50], random_seed=1),
                                  result.predictor().predict(X[:50], random_seed=1))
    with pytest.raises(ParameterError, match="description_length"):
        result.description_length()


def test_rows_that_turn_nan_during_a_fit_are_named(tmp_path):
    X = np.random.default_rng(0).normal(size=(500, 3)).astype("float32")
    np.save(tmp_path / "X.npy", X)
    built = bp.build_model(bp.Network([bp.Dense(1, "identity")], bp.Bernoulli()), np.load(tmp_path / "X.npy",
                           mmap_mode="r"), (X[:, 0] > 0).astype(int), batch_size=50)
    edit = np.load(tmp_path / "X.npy", mmap_mode="r+")
    edit[100:] = np.nan  # another process writes the file after build_model checked it
    edit.flush()
    with pytest.raises(DataError, match=r"of the streamed X now hold NaN or infinite values; build_model found"):
        bp.fit(built, n=50, progressbar=False)


def test_bad_rows_in_a_memory_mapped_file_are_named(tmp_path):
    X = np.zeros((500, 3), dtype="float32")
    X[321, 1] = np.nan
    np.save(tmp_path / "X.npy", X)
    with pytest.raises(DataError, match=r"X contains NaN or infinite values \(rows \[321\]"):
        bp.build_model(bp.Network([bp.Dense(1, "identity")], bp.Bernoulli()), np.load(tmp_path / "X.npy", mmap_mode="r"),
                       np.zeros(500, dtype=int), batch_size=10)


def test_the_generator_writes_complete_files_only(tmp_path):
    with pytest.raises(DataError, match="is not a directory"):
        write_large_synthetic(tmp_path / "missing", rows=10)
    X, y = write_large_synthetic(tmp_path, rows=20_000, features=4, classes=2, random_seed=5)
    again, _ = write_large_synthetic(tmp_path, rows=20_000, features=4, classes=2, random_seed=5)
    np.testing.assert_array_equal(X, again)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["X.npy", "y.npy"] and set(np.unique(y)) == {0, 1}

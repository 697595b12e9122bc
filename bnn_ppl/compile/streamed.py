"""Training inputs larger than memory: memory-mapped ``.npy`` files, dask and zarr arrays.

``build_model`` keeps such an ``X`` where it is and wraps it in a :class:`RowSource`; the JAX
engine reads each chunk's minibatch rows from it (the next chunk's while the current one runs),
so resident memory stays at a few chunks of rows whatever the file's size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from bnn_ppl.errors import DataError

__all__ = ["RowSource", "StreamedRows", "is_streamed", "row_source", "BLOCK_BYTES", "write_npy_rows"]

#: Bytes read at once when a source is scanned from start to end (validation, prediction).
BLOCK_BYTES = 64 * 2**20


def is_streamed(X: Any) -> bool:
    """True for inputs bnn_ppl reads by rows instead of loading: ``np.memmap`` (``np.load(...,
    mmap_mode="r")``), dask arrays and zarr arrays."""
    return isinstance(X, np.memmap) or _is_dask(X) or hasattr(X, "oindex")


def _file_rows(X: Any) -> tuple[str, int, int] | None:
    """``(file, byte offset of row 0, bytes from one row to the next)`` of a memmap whose rows are
    C-ordered blocks of its file, read with ``pread``: a whole ``np.load(path, mmap_mode="r")``
    or a view of its rows (``X[100:]``, ``X[::2]``). None for anything else (read through the
    array): a copy-on-write mapping (``mmap_mode="c"``, whose written pages differ from the
    file), non-native byte order, rows that are not contiguous, a reversed view.
    """
    import mmap

    if (not isinstance(X, np.memmap) or getattr(X, "filename", None) is None or getattr(X, "mode", "r") == "c"
            or not X.dtype.isnative or X.ndim < 2 or X.shape[0] == 0 or not X[0].flags.c_contiguous):
        return None
    root = X
    while isinstance(root.base, np.memmap):
        root = root.base
    row_bytes = int(np.prod(X.shape[1:])) * X.dtype.itemsize
    stride = int(X.strides[0]) if X.shape[0] > 1 else row_bytes
    if not isinstance(root.base, mmap.mmap) or stride < row_bytes:
        return None
    # a view keeps its parent's ``offset``: its own starts where its data pointer lies in the mapping
    offset = int(root.offset) + (X.__array_interface__["data"][0] - root.__array_interface__["data"][0])
    return str(root.filename), offset, stride


def _is_dask(X: Any) -> bool:
    return hasattr(X, "dask") and hasattr(X, "compute") and hasattr(X, "chunks")


@dataclass(frozen=True)
class RowSource:
    """Rows of an out-of-core array, read on demand as floatX.

    Attributes
    ----------
    array : memmap, dask or zarr array
        The user's array, never copied whole.
    dtype : str
        The dtype rows are returned in (PyTensor's floatX).
    """

    array: Any
    dtype: str

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.array.shape)

    @property
    def n_rows(self) -> int:
        return self.shape[0]

    @property
    def row_bytes(self) -> int:
        """Bytes of one row as read (floatX)."""
        return int(np.prod(self.shape[1:])) * np.dtype(self.dtype).itemsize

    @property
    def native_row_bytes(self) -> int:
        """Bytes of one row in the array's own dtype (``read(..., native=True)``)."""
        return int(np.prod(self.shape[1:])) * np.dtype(self.array.dtype).itemsize

    def read(self, rows: np.ndarray, *, native: bool = False) -> np.ndarray:
        """``X[rows]`` in the order given (repeats allowed), as a floatX array (``native``: in the
        array's own dtype, e.g. float32 rows to convert on the device)."""
        rows = np.asarray(rows, dtype=np.int64).ravel()
        unique, inverse = np.unique(rows, return_inverse=True)  # sorted reads: sequential on disk
        layout = _file_rows(self.array)
        if layout is not None:
            block = self._pread(unique, *layout)
        elif hasattr(self.array, "oindex"):  # zarr
            block = self.array.oindex[unique]
        else:
            block = self.array[unique]
            if _is_dask(block):
                block = block.compute()
        block = np.asarray(block)
        dtype = (block.dtype if block.dtype.isnative else block.dtype.newbyteorder("=")) if native else self.dtype
        return np.asarray(block, dtype=dtype)[inverse]

    def _pread(self, rows: np.ndarray, filename: str, offset: int, stride: int) -> np.ndarray:
        """Rows of a memory-mapped file read with ``os.pread`` (see :func:`_file_rows`): one call per
        run of consecutive rows when rows follow each other in the file, else one per row.

        Reading through the mapping would count every page touched in the process's resident
        memory (the whole file after one pass); ``pread`` goes through the page cache only.
        """
        import os

        array = self.array
        row_bytes = int(np.prod(array.shape[1:])) * array.dtype.itemsize
        out = np.empty((rows.size, *array.shape[1:]), dtype=array.dtype)
        flat = out.reshape(rows.size, -1).view(np.uint8)
        if stride == row_bytes:
            starts = np.flatnonzero(np.diff(rows, prepend=-2) != 1)  # first row of each run
        else:
            starts = np.arange(rows.size)
        ends = np.append(starts[1:], rows.size)
        fd = os.open(filename, os.O_RDONLY)
        try:
            for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
                want = (b - a) * row_bytes
                data = os.pread(fd, want, offset + int(rows[a]) * stride)
                if len(data) != want:
                    raise DataError(f"{filename} ended early (rows {rows[a]}..{rows[b - 1]}); was it truncated?")
                flat[a:b] = np.frombuffer(data, dtype=np.uint8).reshape(b - a, row_bytes)
        finally:
            os.close(fd)
        return out

    def blocks(self):
        """``(start, block)`` pairs covering every row in order, about ``BLOCK_BYTES`` each."""
        step = max(1, BLOCK_BYTES // max(1, self.row_bytes))
        for start in range(0, self.n_rows, step):
            yield start, self.read(np.arange(start, min(self.n_rows, start + step)))


def row_source(X: Any, input_shape: tuple[int, ...] | None, dtype: str, name: str = "X",
               validate: bool = True) -> RowSource:
    """Wrap an out-of-core ``X`` and check its shape and dtype; with ``validate``, also that
    every value is finite (one pass over the rows, block by block)."""
    shape = tuple(getattr(X, "shape", ()))
    if any(s != s for s in shape):  # NaN: a dask array whose chunk sizes are unknown
        raise DataError(f"{name} is a dask array of unknown size {shape}; call {name}.compute_chunk_sizes() first.")
    if len(shape) < 2:
        raise DataError(f"{name} must be an array of at least 2 axes (rows, features). Got shape {shape}.")
    if input_shape is not None and shape[1:] != tuple(input_shape):
        raise DataError(f"{name} has examples of shape {shape[1:]} but the network expects {tuple(input_shape)}.")
    if not np.issubdtype(np.dtype(X.dtype), np.number):
        raise DataError(f"{name} must be numeric. Got dtype {X.dtype}.")
    if shape[0] == 0:
        raise DataError(f"{name} has no rows.")
    source = RowSource(X, dtype)
    if validate:
        for start, block in source.blocks():
            _check_finite(block, start, name)
    return source


def _check_finite(block: np.ndarray, start: int, name: str) -> None:
    bad = ~np.isfinite(block)
    if bad.any():
        rows = (start + np.unique(np.nonzero(bad)[0])[:5]).tolist()
        raise DataError(f"{name} contains NaN or infinite values (rows {rows}...); impute or drop them first.")


class StreamedRows:
    """Rows of a :class:`RowSource` read and checked slice by slice (the predictor's input for
    test data larger than memory): ``shape`` and ``rows[a:b]`` as a floatX array."""

    def __init__(self, source: RowSource, name: str = "X") -> None:
        self.source, self.name = source, name

    @property
    def shape(self) -> tuple[int, ...]:
        return self.source.shape

    def __len__(self) -> int:
        return self.source.n_rows

    def __getitem__(self, rows: slice) -> np.ndarray:
        start, stop, step = rows.indices(self.source.n_rows)
        block = self.source.read(np.arange(start, stop, step))
        _check_finite(block, start, self.name)
        return block


def write_npy_rows(path: Any, shape: tuple[int, ...], dtype: str, fill: Any, block_rows: int | None = None) -> np.memmap:
    """Write a ``.npy`` file of ``shape`` block by block (``fill(start, stop) -> rows``, ``block_rows``
    rows at a time, default about ``BLOCK_BYTES``) with bounded memory.

    Written to ``path + ".partial"`` and renamed when complete, so no half-written file is
    left under ``path``. Returns the finished file opened with ``mmap_mode="r"``.
    """
    import os

    final = os.fspath(path)
    partial = final + ".partial"
    out = np.lib.format.open_memmap(partial, mode="w+", dtype=dtype, shape=shape)
    try:
        step = block_rows or max(1, BLOCK_BYTES // max(1, int(np.prod(shape[1:])) * np.dtype(dtype).itemsize))
        for start in range(0, shape[0], step):
            stop = min(shape[0], start + step)
            out[start:stop] = fill(start, stop)
        out.flush()
        del out
        os.replace(partial, final)
    except BaseException:
        if os.path.exists(partial):
            os.remove(partial)
        raise
    return np.load(final, mmap_mode="r")

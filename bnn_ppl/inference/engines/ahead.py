"""A compiled loop's next chunk of inputs, prepared on a second thread while the current chunk runs."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from bnn_ppl.errors import DataError

__all__ = ["ChunkAhead", "StreamedRows", "chunk_lengths"]


def chunk_lengths(n: int, chunk: int) -> list[int]:
    """The steps of each chunk of an ``n``-step fit: ``chunk`` each, the last one shorter.

    Examples
    --------
    >>> chunk_lengths(2500, 1000)
    [1000, 1000, 500]
    """
    return [min(chunk, n - start) for start in range(0, n, chunk)]


class ChunkAhead:
    """``make(i)`` for chunk ``i``, made on a one-worker thread while chunk ``i - 1`` runs.

    ``get(i)`` returns chunk ``i``'s inputs (made now if they were not made ahead) and starts
    making chunk ``i + 1``'s. Made on another thread, JAX calls overlap the chunk running on
    this one (XLA CPU runs calls from one thread one after the other), and file reads overlap
    it too. ``start=True`` starts on chunk 0 at once (during the compilation of the first chunk).

    Examples
    --------
    >>> ahead = ChunkAhead(lambda i: i * i, n_chunks=3, start=True)
    >>> [ahead.get(i) for i in range(3)]
    [0, 1, 4]
    >>> ahead.close()
    """

    def __init__(self, make: Callable[[int], Any], n_chunks: int, *, start: bool = False,
                 name: str = "bnn_ppl-ahead") -> None:
        self._make, self._n_chunks = make, n_chunks
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._pending: dict[int, Future] = {0: self._pool.submit(make, 0)} if start and n_chunks else {}

    def get(self, i: int) -> Any:
        future = self._pending.pop(i, None) or self._pool.submit(self._make, i)
        if i + 1 < self._n_chunks and i + 1 not in self._pending:
            self._pending[i + 1] = self._pool.submit(self._make, i + 1)
        return future.result()

    def close(self, wait: bool = False) -> None:
        """Drop what is still pending (a fit stopped early); ``wait``: until a running ``make`` ends."""
        self._pool.shutdown(wait=wait, cancel_futures=True)


class StreamedRows:
    """The minibatch rows of each chunk, read from data larger than memory one chunk ahead.

    Chunk ``i`` draws its row indices from the same key as the in-memory loop
    (``split(key)[1]``), so a streamed fit follows the trajectory of the same fit with the data
    in memory whenever both run chunks of the same length (streamed chunks hold at most
    ``STREAM_CHUNK_BYTES`` of rows). While chunk ``i`` runs, a thread reads chunk ``i + 1``'s rows.
    """

    def __init__(self, built: Any, keys: Any, lengths: list[int], y_dtype: Any) -> None:
        self.built, self.keys, self.y_dtype, self.lengths = built, keys, y_dtype, lengths
        self.ahead = ChunkAhead(self._read, len(self.lengths), start=True, name="bnn_ppl-stream")

    def _read(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        import jax

        built, length = self.built, self.lengths[i]
        _, k_idx = jax.random.split(self.keys[i])
        idx = np.asarray(jax.random.randint(k_idx, (length, built.batch_size), 0, built.n_obs))
        X = built.source.read(idx, native=True).reshape(length, built.batch_size, *built.source.shape[1:])
        finite = np.isfinite(X.reshape(idx.size, -1)).all(axis=1)
        if not finite.all():
            rows = np.unique(idx.reshape(-1)[~finite])[:5].tolist()
            raise DataError(f"Rows {rows} of the streamed X now hold NaN or infinite values; build_model found every "
                            "row finite, so the data changed during the fit. Fix the file and fit again.")
        # on the device before the chunk that needs it starts (the copy overlaps the running chunk)
        return jax.device_put(X), jax.device_put(built.source_y[idx].astype(self.y_dtype))

    def batches(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        return self.ahead.get(i)

    def close(self) -> None:
        self.ahead.close(wait=True)

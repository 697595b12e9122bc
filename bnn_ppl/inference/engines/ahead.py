"""A compiled loop's next chunk of inputs, prepared on a second thread while the current chunk runs."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

__all__ = ["ChunkAhead", "chunk_lengths"]


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

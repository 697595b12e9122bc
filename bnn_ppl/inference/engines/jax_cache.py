"""On-disk caches of compiled JAX: XLA's executables, and the exported programs of the fit loop.

A new process that fits a network it fitted before would otherwise translate PyMC's graph to
JAX, trace the chunk loop and lower it again (moons 2-5-5-1: ~1 s of a 4 s first result) before
XLA's own persistent cache can give back the executable. :class:`Persisted` keeps each chunk
function's :mod:`jax.export` form (StableHLO, serialised with flatbuffers: no pickle) under
``$XDG_CACHE_HOME/bnn_ppl/jax-export``, by a key that names everything the program depends on
(see :func:`program_key`), and calls the exported form, whose executable XLA's cache holds.

``BNN_PPL_JAX_CACHE=0`` (or ``false``, ``no``, ``off``) switches both caches off. A cache file
that is damaged, another program's or of other shapes is not used (the program is built as usual
and the file replaced). Programs holding code from outside bnn_ppl (a registered activation,
prior, layer, ...) are never kept: their code is not in the key.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import stat
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["JAX_CACHE_BYTES", "EXPORT_CACHE_BYTES", "Persisted", "cache_root", "program_key", "use_persistent_cache"]

#: Size bound of the persistent JAX compilation cache :func:`use_persistent_cache` sets up.
JAX_CACHE_BYTES = 512 * 2**20
#: Size bound of the exported programs kept by :class:`Persisted` (least recently used go first).
EXPORT_CACHE_BYTES = 256 * 2**20
_SUFFIX = ".jaxexport"
#: A kept file: this header, the digest of its program's key and call signature, then the export.
_MAGIC = b"bnn_ppl-jax-export-1\n"
_OFF = {"0", "false", "no", "off"}
#: Age after which a ``.part`` file (a writer killed mid-write) is removed.
_STALE_PART_S = 3600
#: How often XLA's folder is trimmed to ``JAX_CACHE_BYTES`` (by the first fit of a process).
_TRIM_EVERY_S = 3600
_log = logging.getLogger(__name__)


def cache_root() -> Path | None:
    """``$XDG_CACHE_HOME/bnn_ppl`` (``~/.cache/bnn_ppl``), or None when ``BNN_PPL_JAX_CACHE`` is
    ``0``, ``false``, ``no`` or ``off``."""
    if os.environ.get("BNN_PPL_JAX_CACHE", "1").strip().lower() in _OFF:
        return None
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "bnn_ppl"


def use_persistent_cache() -> str | None:
    """Point JAX's persistent compilation cache at ``$XDG_CACHE_HOME/bnn_ppl/jax`` (``~/.cache``
    by default), so a new process reuses the compiled chunks of earlier ones.

    Left alone when the process already set ``jax_compilation_cache_dir`` (``JAX_COMPILATION_CACHE_DIR``)
    or the cache is off (:func:`cache_root`). Returns the directory in use (None: no cache).
    """
    import jax

    current = jax.config.jax_compilation_cache_dir
    root = cache_root()
    if current or root is None:
        return current or None
    directory = root / "jax"
    jax.config.update("jax_compilation_cache_dir", str(directory))
    # the chunk functions of small networks compile in well under JAX's default 1 s threshold
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    # JAX's own size bound takes a lock shared by every process and lists the whole folder on each
    # write (0.07-0.08 s a write with the 4,400 files a test suite leaves, xdist workers queued on
    # the lock); the folder is trimmed here instead, at most once an hour
    jax.config.update("jax_compilation_cache_max_size", -1)
    marker = directory / ".trimmed"
    try:
        if not marker.exists() or time.time() - marker.stat().st_mtime > _TRIM_EVERY_S:
            _trim(directory, JAX_CACHE_BYTES)
            marker.touch()
    except OSError:
        pass
    return str(directory)


@functools.cache
def _code_and_versions() -> str:
    """A digest of this package's source files and the versions of the libraries a program is built with."""
    from importlib.metadata import version

    digest = hashlib.sha256()
    package = Path(__file__).resolve().parents[2]
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode())
        digest.update(path.read_bytes())
    for name in ("jax", "jaxlib", "pytensor", "pymc", "numpy"):
        digest.update(f"{name}={version(name)}".encode())
    return digest.hexdigest()


def program_key(*parts: Any) -> str | None:
    """A stable key for a program built from ``parts`` (their reprs, which must be complete), the
    package's code, the library versions and the JAX settings that change a trace; None when a
    part's repr names an object's address (such a program is not kept across processes)."""
    import jax

    config = {name: str(getattr(jax.config, name, None)) for name in (
        "jax_enable_x64", "jax_default_prng_impl", "jax_threefry_partitionable", "jax_default_matmul_precision")}
    text = repr((parts, json.dumps(config, sort_keys=True), jax.default_backend(),
                 [d.device_kind for d in jax.local_devices()[:1]], _code_and_versions()))
    if " at 0x" in text:
        return None
    return hashlib.sha256(text.encode()).hexdigest()


def _signature(args: Sequence[Any], static_argnums: tuple[int, ...]) -> tuple[str, list[Any], Any]:
    import jax
    import numpy as np

    dynamic = tuple(a for i, a in enumerate(args) if i not in static_argnums)
    leaves, tree = jax.tree.flatten((dynamic, {}))  # as an Exported's in_tree: (args, kwargs)
    avals = [(tuple(np.shape(a)), str(getattr(a, "dtype", None) or np.asarray(a).dtype)) for a in leaves]
    static = [repr(args[i]) for i in static_argnums]
    return repr((str(tree), avals, static)), list(dynamic), tree


class Persisted:
    """``jitted()``'s function, called through its :mod:`jax.export` form kept on disk.

    ``jitted`` makes the ``jax.jit`` function (with ``static_argnums``) only when no file holds
    the program for a call's shapes; ``key`` (:func:`program_key`) names the program. Thread safe:
    a second thread may call it (the engine draws the next chunk's inputs on one).
    """

    def __init__(self, name: str, key: str, jitted: Callable[[], Callable], directory: Path,
                 static_argnums: tuple[int, ...] = ()) -> None:
        self.name, self.key, self.directory, self.static_argnums = name, key, directory, static_argnums
        self._make, self._jitted = jitted, None
        self._calls: dict[str, Callable] = {}
        self._lock = threading.Lock()

    def jitted(self) -> Callable:
        """The ``jax.jit`` function itself (made once)."""
        with self._lock:
            if self._jitted is None:
                self._jitted = self._make()
            return self._jitted

    def __call__(self, *args: Any) -> Any:
        signature, dynamic, tree = _signature(args, self.static_argnums)
        call = self._calls.get(signature)
        if call is None:
            call = self._calls[signature] = self._program(signature, args, dynamic, tree)
        # committed to the device, as the outputs fed back are: a jitted call of an Exported
        # compiles again when only that changes (moons: 1.4 s for the second chunk)
        return call(*_device_put(dynamic))

    def _program(self, signature: str, args: Sequence[Any], dynamic: list[Any], tree: Any) -> Callable:
        import jax

        digest = hashlib.sha256(f"{self.name}\n{self.key}\n{signature}".encode()).digest()
        path = self.directory / f"{self.name}-{digest.hex()[:40]}{_SUFFIX}"
        exported = _load(path, digest, dynamic, tree)
        if exported is None:
            try:
                exported = jax.export.export(self.jitted())(*args)  # for this process's platform
                blob = _MAGIC + digest + bytes(exported.serialize())
            except Exception as error:  # no flatbuffers, a program export refuses
                _log.debug("bnn_ppl: %s not kept across processes (%s)", self.name, error)
                jitted = self.jitted()
                return lambda *dynamic_args: jitted(*_with_static(dynamic_args, args, self.static_argnums))
            try:
                _store(path, blob, self.directory)
            except OSError as error:  # an unwritable folder: this process runs the export all the same
                _log.debug("bnn_ppl: %s not kept across processes (%s)", self.name, error)
        return jax.jit(exported.call)


def _device_put(tree: Any) -> Any:
    import jax

    device = jax.config.jax_default_device
    if not isinstance(device, jax.Device):
        device = jax.local_devices(backend=jax.default_backend())[0]
    return jax.device_put(tree, device)


def _with_static(dynamic: Sequence[Any], args: Sequence[Any], static_argnums: tuple[int, ...]) -> list[Any]:
    merged, rest = [], iter(dynamic)
    for i in range(len(args)):
        merged.append(args[i] if i in static_argnums else next(rest))
    return merged


def _load(path: Path, digest: bytes, dynamic: list[Any], tree: Any) -> Any:
    """The exported program in ``path`` if it is the one ``digest`` names and takes these inputs;
    None when missing, damaged, another program's, or not a regular file (a FIFO would block)."""
    import jax
    import numpy as np

    header = len(_MAGIC) + len(digest)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or not header < info.st_size <= EXPORT_CACHE_BYTES:
            return None
        with os.fdopen(fd, "rb") as file:
            fd = -1
            blob = file.read()
    except OSError:
        return None
    finally:
        if fd >= 0:
            os.close(fd)
    if blob[:header] != _MAGIC + digest:  # another program's file under this name, or an old format
        return None
    try:
        exported = jax.export.deserialize(bytearray(blob[header:]))
        leaves = jax.tree.leaves((dynamic, {}))
        ok = (exported.in_tree == tree and len(exported.in_avals) == len(leaves)
              and all(a.shape == tuple(np.shape(x)) and a.dtype == x.dtype for a, x in zip(exported.in_avals, leaves))
              and exported.platforms == (jax.export.default_export_platform(),))
    except Exception as error:  # a damaged or truncated file: built anew and replaced
        _log.debug("bnn_ppl: ignoring cache file %s (%s)", path, error)
        return None
    if not ok:
        return None
    try:
        os.utime(path)  # recently used: kept when the folder is trimmed
    except OSError:
        pass
    return exported


def _store(path: Path, blob: bytes | bytearray, directory: Path) -> None:
    """Write ``blob`` to ``path`` whole or not at all, then trim the folder to ``EXPORT_CACHE_BYTES``."""
    directory.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.part")
    try:
        partial.write_bytes(bytes(blob))
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    _trim(directory, EXPORT_CACHE_BYTES, suffix=_SUFFIX, keep=path)


def _trim(directory: Path, limit: int, suffix: str = "", keep: Path | None = None) -> None:
    """Delete the least recently used files (by access or write time) ending in ``suffix`` until
    ``directory`` holds at most ``limit`` bytes of them (``keep`` stays); ``.part`` files older
    than ``_STALE_PART_S`` (writers that were killed) go too."""
    files, now = [], time.time()
    if not directory.is_dir():
        return
    for entry in directory.iterdir():
        try:
            info = entry.stat()
        except OSError:
            continue
        if entry.name.endswith(".part") and now - info.st_mtime > _STALE_PART_S:
            entry.unlink(missing_ok=True)
        elif entry.name.endswith(suffix) and stat.S_ISREG(info.st_mode):
            files.append((max(info.st_atime, info.st_mtime), info.st_size, entry))
    total = sum(size for _, size, _ in files)
    for _, size, entry in sorted(files):
        if total <= limit:
            break
        if entry != keep:
            entry.unlink(missing_ok=True)
            total -= size

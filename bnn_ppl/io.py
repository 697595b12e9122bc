"""Save and load fitted models as one zip of JSON and ``.npy`` files: nothing is pickled or executed.

A model file holds

- ``spec.json``: the network spec (:func:`bnn_ppl.spec.spec_to_dict`);
- ``fit.json``: how it was fitted, the data layout (rows, batch size, feature and class names)
  and the flat parameter layout;
- ``params/<name>.npy``: the variational parameters (``mu`` and ``rho`` or ``L_tril``);
- ``losses.npy`` and, unless left out, ``data/X.npy`` / ``data/y.npy`` (the training data);
- ``data/reference_X.npy`` for networks with batch statistics (BatchNorm): the training rows
  whose statistics normalise predictions, kept even when the data are left out;
- ``metadata.json``: free-form JSON from the caller (the sklearn estimators keep their state there);
- ``manifest.json``: file format and version, package versions, and a SHA-256 of every member.

Loading rebuilds the PyMC model from the spec and writes the parameters into a fresh
approximation, so predictions equal those made before saving for the same seed.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import zipfile
import zlib
from importlib import metadata as _metadata
from pathlib import Path
from typing import Any

import numpy as np

from bnn_ppl.errors import BnnPplError, ModelFileError
from bnn_ppl.spec import spec_from_dict, spec_to_dict

__all__ = ["FORMAT", "FORMAT_VERSION", "save", "load", "load_with_metadata", "to_bytes", "from_bytes"]

FORMAT = "bnn_ppl.model"
#: Version of the model file layout this package writes and the newest it reads.
FORMAT_VERSION = 1
_MANIFEST = "manifest.json"
_MAX_MEMBER_BYTES = 2**32  # refuse absurd declared sizes (zip bombs) before decompressing
_PARAM_NAMES = {"advi": ("mu", "rho"), "fullrank_advi": ("mu", "L_tril")}


def _version(package: str) -> str:
    try:
        return _metadata.version(package)
    except _metadata.PackageNotFoundError:  # pragma: no cover
        return "unknown"


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def _json(data: Any) -> bytes:
    return json.dumps(data, indent=1, sort_keys=True, allow_nan=True).encode("utf-8")


def _ordering(approx: Any) -> list[list[Any]]:
    return [[name, list(shape)] for name, (_, _, shape, _) in approx.groups[0].ordering.items()]


def to_bytes(result: Any, *, metadata: dict | None = None, include_data: bool = True) -> bytes:
    """The model file of a :class:`~bnn_ppl.FitResult` as bytes (see :func:`save`)."""
    built = result.built
    class_names = built.class_names if built.spec.likelihood.is_classifier else None
    fit_info = {
        "method": result.method,
        "engine": result.engine,
        "backend": result.backend,
        "learning_rate": result.learning_rate,
        "lr_floor": result.lr_floor,
        "n_steps": result.n_steps,
        "random_seed": result.random_seed,
        "timings": {k: float(v) for k, v in result.timings.items()},
        "interrupted": bool(result.interrupted),
        "n_obs": int(built.n_obs),
        "batch_size": built.batch_size,
        "feature_names": None if built.feature_names is None else [
            str(v) if not isinstance(v, int) else v for v in built.feature_names],
        "class_names": None if class_names is None else [c if isinstance(c, int) else str(c) for c in class_names],
        "ordering": _ordering(result.approx),
        "data_included": bool(include_data),
    }
    members: dict[str, bytes] = {
        "spec.json": _json(spec_to_dict(built.spec)),
        "fit.json": _json(fit_info),
        "losses.npy": _npy(np.asarray(result.losses, dtype=float)),
        "metadata.json": _json(metadata or {}),
    }
    for name, value in result.params().items():
        members[f"params/{name}.npy"] = _npy(value)
    if built.reference_X is not None:  # BatchNorm's prediction statistics (training rows)
        members["data/reference_X.npy"] = _npy(built.reference_X)
    if include_data:
        members["data/X.npy"] = _npy(np.asarray(built.X_data.get_value()))
        members["data/y.npy"] = _npy(np.asarray(built.y_data.get_value()))
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "versions": {p: _version(p) for p in ("bnn_ppl", "pymc", "pytensor", "numpy")},
        "members": {name: hashlib.sha256(data).hexdigest() for name, data in members.items()},
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(_MANIFEST, _json(manifest))
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def save(result: Any, path: str | os.PathLike, *, metadata: dict | None = None, include_data: bool = True) -> Path:
    """Write a fitted model to one file, atomically (temporary file, then rename).

    Parameters
    ----------
    result : FitResult
    path : str or path
        Destination (conventionally ``*.bnn``); an existing file is replaced only once the new
        one is complete, so an interrupted save leaves it intact.
    metadata : dict, optional
        JSON-serialisable extras stored with the model.
    include_data : bool
        Store the training data (needed to continue fitting or export ``observed_data``);
        without it the loaded model still predicts.

    Returns
    -------
    Path

    Examples
    --------
    >>> result.save("moons.bnn")  # doctest: +SKIP
    >>> bnn_ppl.load("moons.bnn").predictor().predict(X_test)  # doctest: +SKIP
    """
    path = Path(path)
    data = to_bytes(result, metadata=metadata, include_data=include_data)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load(path: str | os.PathLike) -> Any:
    """Read a model file written by :func:`save` into a :class:`~bnn_ppl.FitResult`.

    Raises
    ------
    ModelFileError
        The file is missing, truncated, corrupted, tampered with, from a newer bnn_ppl, or its
        spec no longer validates; the message names which.
    """
    return load_with_metadata(path)[0]


def load_with_metadata(path: str | os.PathLike) -> tuple[Any, dict]:
    """Like :func:`load`, also returning the ``metadata`` dict given to :func:`save`."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ModelFileError(f"No model file at {str(path)!r}.") from None
    except IsADirectoryError:
        raise ModelFileError(f"{str(path)!r} is a directory, not a model file.") from None
    return from_bytes(data, where=str(path))


def _read_members(data: bytes, where: str) -> dict[str, bytes]:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            names = zf.namelist()
            if _MANIFEST not in names:
                raise ModelFileError(f"{where} is a zip file but not a bnn_ppl model (it has no {_MANIFEST}).")
            for info in zf.infolist():
                if info.file_size > _MAX_MEMBER_BYTES:
                    raise ModelFileError(f"{where}: member {info.filename} declares {info.file_size} bytes; refused.")
            return {name: zf.read(name) for name in names}
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as err:
        raise ModelFileError(
            f"{where} is truncated or corrupted ({err}); it is not a readable bnn_ppl model file. "
            "Save the model again."
        ) from None


def _parse_json(where: str, name: str, data: bytes) -> Any:
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelFileError(f"{where}: {name} is not valid JSON ({err}); the file is corrupted.") from None


def _check_manifest(where: str, members: dict[str, bytes]) -> None:
    manifest = _parse_json(where, _MANIFEST, members[_MANIFEST])
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ModelFileError(f"{where} is not a bnn_ppl model file (its manifest lacks format={FORMAT!r}).")
    version = manifest.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ModelFileError(f"{where}: format_version must be a positive integer. Got {version!r}.")
    if version > FORMAT_VERSION:
        saved_by = manifest.get("versions", {}).get("bnn_ppl", "unknown")
        raise ModelFileError(
            f"{where} has format_version {version}, newer than the {FORMAT_VERSION} this bnn_ppl reads "
            f"(it was saved by bnn_ppl {saved_by}); upgrade bnn_ppl to load it."
        )
    expected = manifest.get("members")
    if not isinstance(expected, dict):
        raise ModelFileError(f"{where}: the manifest has no member checksums; the file is corrupted.")
    present = set(members) - {_MANIFEST}
    if set(expected) != present:
        raise ModelFileError(
            f"{where} has been tampered with: members {sorted(present ^ set(expected))} do not match its manifest."
        )
    for name, digest in expected.items():
        if hashlib.sha256(members[name]).hexdigest() != digest:
            raise ModelFileError(
                f"{where} has been tampered with or corrupted: the SHA-256 checksum of {name} does not match "
                "its manifest."
            )


def _array(where: str, members: dict[str, bytes], name: str) -> np.ndarray:
    if name not in members:
        raise ModelFileError(f"{where}: the member {name} is missing; the file is incomplete. Save the model again.")
    try:
        arr = np.load(io.BytesIO(members[name]), allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise ModelFileError(f"{where}: {name} is not a valid .npy array ({err}).") from None
    if arr.dtype.kind not in "biuf":
        raise ModelFileError(f"{where}: {name} must hold numbers. Got dtype {arr.dtype}.")
    return arr


def from_bytes(data: bytes, *, where: str = "<bytes>") -> tuple[Any, dict]:
    """Rebuild ``(FitResult, metadata)`` from the bytes of a model file."""
    import pymc as pm

    from bnn_ppl.compile import build_model
    from bnn_ppl.inference import FitResult

    members = _read_members(data, where)
    _check_manifest(where, members)
    try:
        spec = spec_from_dict(_parse_json(where, "spec.json", members["spec.json"]))
    except BnnPplError as err:
        raise ModelFileError(f"{where}: the saved spec no longer validates: {err}") from None
    info = _parse_json(where, "fit.json", members["fit.json"])
    meta = _parse_json(where, "metadata.json", members["metadata.json"])
    method = info.get("method")
    if method not in _PARAM_NAMES:
        raise ModelFileError(f"{where}: fit.json has method {method!r}; expected one of {list(_PARAM_NAMES)}.")
    if info["data_included"]:
        X, y = _array(where, members, "data/X.npy"), _array(where, members, "data/y.npy")
    else:  # a stand-in of the right width: enough to rebuild the graph for prediction
        rows = info["batch_size"] or 1
        X, y = np.zeros((rows, *spec.input_shape)), np.zeros(rows, dtype=np.int64)
    try:
        built = build_model(spec, X, y, info["batch_size"], feature_names=info["feature_names"],
                            class_names=info["class_names"])
    except BnnPplError as err:
        raise ModelFileError(f"{where}: the saved spec and data no longer build a model: {err}") from None
    built.n_obs = int(info["n_obs"])
    if built.reference_X is not None:
        reference = _array(where, members, "data/reference_X.npy")
        if reference.shape[1:] != built.reference_X.shape[1:]:
            raise ModelFileError(f"{where}: data/reference_X.npy has shape {reference.shape}; expected rows of "
                                 f"shape {built.reference_X.shape[1:]}.")
        built.reference_X = reference.astype(built.reference_X.dtype)
    approx = (pm.MeanField if method == "advi" else pm.FullRank)(model=built.model)
    if _ordering(approx) != info["ordering"]:
        raise ModelFileError(
            f"{where}: the parameter layout saved ({info['ordering']}) differs from the rebuilt model's "
            f"({_ordering(approx)}); the file was written by an incompatible bnn_ppl."
        )
    params = approx.groups[0].params_dict
    for name in _PARAM_NAMES[method]:
        value = _array(where, members, f"params/{name}.npy")
        current = params[name].get_value()
        if value.shape != current.shape:
            raise ModelFileError(f"{where}: params/{name}.npy has shape {value.shape}; expected {current.shape}.")
        params[name].set_value(value.astype(current.dtype))
    losses = _array(where, members, "losses.npy").astype(float)
    result = FitResult(
        built=built,
        approx=approx,
        losses=losses,
        method=method,
        engine=info["engine"],
        backend=info["backend"],
        learning_rate=float(info["learning_rate"]),
        n_steps=int(info["n_steps"]),
        random_seed=info["random_seed"],
        timings=dict(info["timings"]),
        interrupted=bool(info["interrupted"]),
        lr_floor=float(info.get("lr_floor", 1.0)),
    )
    return result, meta

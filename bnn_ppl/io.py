"""Save and load fitted models as one zip of JSON and ``.npy`` files: nothing is pickled or executed.

A model file holds

- ``spec.json``: the network spec (:func:`bnn_ppl.spec.spec_to_dict`);
- ``fit.json``: how it was fitted, the data layout (rows, batch size, feature and class names)
  and the flat parameter layout;
- ``params/<name>.npy``: the variational parameters (the family's ``param_names``; an ensemble's
  with a leading members axis);
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
import zipfile
import zlib
from importlib import metadata as _metadata
from pathlib import Path
from typing import Any

import numpy as np

from bnn_ppl.errors import BnnPplError, DataError, ModelFileError
from bnn_ppl.spec import spec_from_dict, spec_to_dict
from bnn_ppl.io_members import array as _array
from bnn_ppl.io_members import json_object as _json_object
from bnn_ppl.io_members import check_manifest
from bnn_ppl.io_schema import check_fit_info
from bnn_ppl.inference.estimator import ELBO
from bnn_ppl.spec.io import write_atomic

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "MAX_TOTAL_BYTES",
    "MAX_COMPRESSION_RATIO",
    "save",
    "load",
    "load_with_metadata",
    "to_bytes",
    "from_bytes",
]

FORMAT = "bnn_ppl.model"
#: Version of the model file layout this package writes and the newest it reads.
FORMAT_VERSION = 1
#: Largest total uncompressed size of a model file's members, as declared in its zip
#: directory; larger files are refused before anything is decompressed. Raise it
#: (``bnn_ppl.io.MAX_TOTAL_BYTES = ...``) to load a trusted file saved with more training data.
MAX_TOTAL_BYTES = 2**31
#: Largest declared uncompressed / compressed size of one member bigger than
#: ``_RATIO_MIN_BYTES``. Arrays of real numbers compress a few times; deflate peaks near 1030
#: on constant bytes (2 GiB of zeros in a 2 MB "zip bomb"). Raise it like ``MAX_TOTAL_BYTES``.
MAX_COMPRESSION_RATIO = 100
_RATIO_MIN_BYTES = 2**24  # smaller members may compress as they like (sorted labels, JSON)
_MANIFEST = "manifest.json"
#: Classes of the estimators of :mod:`bnn_ppl.sklearn`, which keep their state in the metadata.
_ESTIMATORS = ("BNNClassifier", "BNNRegressor", "BNNClassifierCV", "BNNRegressorCV")


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


def _layout_json(layout: Any) -> list[list[Any]]:
    return [[name, list(shape)] for name, (_, _, shape, _) in layout.items()]


def _check_saveable(built: Any, include_data: bool) -> None:
    """Refuse models a file cannot rebuild: user-added variables, or data swapped in with other rows."""
    extra = sorted({rv.name for rv in built.model.free_RVs} - set(built.built_rv_names))
    if extra:
        raise ModelFileError(
            f"The model has variables its spec does not create: {extra} (added to built.model by hand). A model "
            "file stores the spec, so loading could not rebuild them; save the added variables' posterior yourself "
            "(e.g. result.to_datatree()), or express the model as a spec."
        )
    if not built.training_data:
        if include_data:
            raise ModelFileError("This model was loaded from a file saved without its training data; save it with "
                                 "include_data=False too (prediction needs no training rows).")
        return  # the stand-in rows are not saved
    rows = built.container_rows()
    if rows != [built.container_rows_expected]:
        raise ModelFileError(
            f"The model's pm.Data containers hold {rows} rows but it was fitted on {built.n_obs}; saving "
            "would store the swapped-in rows as training data. pm.set_data the training rows back first."
        )
    if include_data:
        try:
            built.check_training_rows("save (its data are stored as the training data)")
        except DataError as err:  # same-sized rows swapped in, or labels that are not labels
            raise ModelFileError(str(err)) from None


def to_bytes(result: Any, *, metadata: dict | None = None, include_data: bool = True) -> bytes:
    """The model file of a :class:`~bnn_ppl.FitResult` as bytes (see :func:`save`)."""
    built = result.built
    _check_saveable(built, include_data)
    if include_data and built.source is not None:
        raise ModelFileError(
            f"This fit streamed its {built.n_obs:,} training rows from data larger than memory (built.source); a model "
            "file does not copy them. Save with include_data=False (prediction needs no training rows)."
        )
    class_names = built.class_names if built.spec.likelihood.is_classifier else None
    fit_info = {
        "method": result.method,
        "family_options": result.family.options(),
        "members": int(result.members),
        "member_seeds": [int(s) for s in result.member_seeds],
        "mc_draws": int(result.mc_draws),
        "elbo": result.elbo.options(),
        "engine": result.engine,
        "backend": result.backend,
        "learning_rate": result.learning_rate,
        "lr_floor": result.lr_floor,
        "n_steps": result.n_steps,
        "random_seed": int(result.random_seed) if isinstance(result.random_seed, np.integer) else result.random_seed,
        "timings": {k: float(v) for k, v in result.timings.items()},
        "interrupted": bool(result.interrupted),
        "stop_reason": result.stop_reason,
        "n_obs": int(built.n_obs),
        "batch_size": built.batch_size,
        "feature_names": None if built.feature_names is None else [
            str(v) if not isinstance(v, int) else v for v in built.feature_names],
        "class_names": None if class_names is None else [c if isinstance(c, int) else str(c) for c in class_names],
        "ordering": _layout_json(result.posterior.layout),
        "data_included": bool(include_data),
        "prior_scale": built.prior_scale,
    }
    members: dict[str, bytes] = {
        "spec.json": _json(spec_to_dict(built.spec)),
        "fit.json": _json(fit_info),
        "losses.npy": _npy(np.asarray(result.losses if result.member_losses is None else result.member_losses,
                                      dtype=float)),
        "metadata.json": _json(metadata or {}),
    }
    for name, value in result.params().items():
        members[f"params/{name}.npy"] = _npy(value)
    if built.reference_X is not None:  # BatchNorm's prediction statistics (training rows)
        members["data/reference_X.npy"] = _npy(built.reference_X)
    if include_data:
        members["data/X.npy"] = _npy(np.asarray(built.X_data.get_value()))
        members["data/y.npy"] = _npy(built.targets())
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
        one is complete, so an interrupted save leaves it intact. The file gets the
        permissions of any file the user creates (``0o666`` less the umask).
    metadata : dict, optional
        JSON-serialisable extras stored with the model.
    include_data : bool
        Store the training data (needed to continue fitting or export ``observed_data``);
        without it the loaded model still predicts.

    Returns
    -------
    Path

    Raises
    ------
    FileNotFoundError, NotADirectoryError
        The directory of ``path`` does not exist, or is a file (the message names both); it
        is not created.

    Examples
    --------
    >>> import bnn_ppl
    >>> path = result.save("moons.bnn")
    >>> same = bnn_ppl.load(path).predictor().predict(X_test, random_seed=0)
    >>> bool((same == result.predictor().predict(X_test, random_seed=0)).all())
    True
    """
    return write_atomic(Path(path), to_bytes(result, metadata=metadata, include_data=include_data))


def load(path: str | os.PathLike) -> Any:
    """Read a model file written by :func:`save` into a :class:`~bnn_ppl.FitResult`.

    Files written by ``BNNClassifier.save`` / ``BNNRegressor.save`` are refused: load them
    with ``BNNClassifier.load(path)`` / ``BNNRegressor.load(path)`` (or take their bare fit
    with :func:`load_with_metadata`).

    Raises
    ------
    ModelFileError
        The file is missing, truncated, corrupted, tampered with or edited, from a newer
        bnn_ppl, its spec no longer validates, or it holds a scikit-learn estimator; the
        message names which.
    """
    result, meta = load_with_metadata(path)
    estimator = meta.get("estimator")
    if isinstance(estimator, dict) and estimator.get("class") in _ESTIMATORS:
        cls = estimator["class"]
        raise ModelFileError(
            f"{path} holds a fitted {cls} (written by {cls}.save); load it with "
            f"bnn_ppl.{cls}.load(path), or use bnn_ppl.io.load_with_metadata(path) for its bare FitResult."
        )
    cli = meta.get("cli")
    if isinstance(cli, dict) and isinstance(cli.get("standardise"), dict):
        import warnings

        target = " and maps its outputs back to the target's units" if "y_scale" in cli["standardise"] else ""
        warnings.warn(
            f"{path} was written by `bnn-ppl fit`, which standardised the CSV's features before fitting; its "
            f"predictor takes standardised rows, (X - mean) / scale with metadata['cli']['standardise'] from "
            f"bnn_ppl.io.load_with_metadata(path). `bnn-ppl predict` does that for you{target}.",
            UserWarning, stacklevel=2)
    return result


def load_with_metadata(path: str | os.PathLike) -> tuple[Any, dict]:
    """Like :func:`load`, also returning the ``metadata`` dict given to :func:`save`.

    Unlike :func:`load` it also reads the files of the scikit-learn estimators (whose state is
    in the metadata).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ModelFileError(f"No model file at {str(path)!r}.") from None
    except IsADirectoryError:
        raise ModelFileError(f"{str(path)!r} is a directory, not a model file.") from None
    return from_bytes(data, where=str(path))


# ---------------------------------------------------------------------- reading: the zip
def _check_sizes(where: str, infos: list[zipfile.ZipInfo]) -> None:
    """Refuse zip bombs from the sizes declared in the zip directory, before decompressing.

    ``zipfile`` stops each member at its declared size, so these bound the memory used.
    """
    total = sum(info.file_size for info in infos)
    if total > MAX_TOTAL_BYTES:
        raise ModelFileError(
            f"{where} declares {total:,} bytes of uncompressed members, more than "
            f"bnn_ppl.io.MAX_TOTAL_BYTES = {MAX_TOTAL_BYTES:,}; refused before decompressing (a damaged "
            "file or a zip bomb). If you trust the file, raise bnn_ppl.io.MAX_TOTAL_BYTES and load it again."
        )
    for info in infos:
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > _RATIO_MIN_BYTES and ratio > MAX_COMPRESSION_RATIO:
            raise ModelFileError(
                f"{where}: the member {info.filename} declares {info.file_size:,} bytes compressed into "
                f"{info.compress_size:,}, a compression ratio of {ratio:.0f}, more than "
                f"bnn_ppl.io.MAX_COMPRESSION_RATIO = {MAX_COMPRESSION_RATIO}; refused before decompressing "
                "(a zip bomb?). If you trust the file, raise bnn_ppl.io.MAX_COMPRESSION_RATIO and load it again."
            )


def _read_members(data: bytes, where: str) -> dict[str, bytes]:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            names = zf.namelist()
            if _MANIFEST not in names:
                raise ModelFileError(f"{where} is a zip file but not a bnn_ppl model (it has no {_MANIFEST}).")
            _check_sizes(where, zf.infolist())
            return {name: zf.read(name) for name in names}
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as err:
        # RuntimeError: zipfile's "encrypted, password required" (a flag bit flipped in the directory)
        raise ModelFileError(
            f"{where} is truncated or corrupted ({err}); it is not a readable bnn_ppl model file. "
            "Save the model again."
        ) from None


# ---------------------------------------------------------------------- reading: the model
def _read_spec(where: str, members: dict[str, bytes]) -> Any:
    data = _json_object(where, members, "spec.json")
    try:
        return spec_from_dict(data)
    except BnnPplError as err:
        raise ModelFileError(f"{where}: the saved spec no longer validates: {err}") from None


def _rebuild_model(where: str, members: dict[str, bytes], spec: Any, info: dict[str, Any]) -> Any:
    """The BuiltModel on the saved data (or a stand-in of the right width) and reference rows."""
    from bnn_ppl.compile import build_model

    if info["data_included"]:
        X, y = _array(where, members, "data/X.npy"), _array(where, members, "data/y.npy")
    else:  # a stand-in of the right width: enough to rebuild the graph for prediction
        rows = info["batch_size"] or 1
        X, y = np.zeros((rows, *spec.input_shape)), np.zeros(rows, dtype=np.int64)
    try:
        built = build_model(spec, X, y, info["batch_size"], feature_names=info["feature_names"],
                            class_names=info["class_names"], n_obs=info["n_obs"], prior_scale=info["prior_scale"])
    except BnnPplError as err:
        raise ModelFileError(f"{where}: the saved spec and data no longer build a model: {err}") from None
    built.training_data = bool(info["data_included"])
    if built.reference_X is not None:
        reference = _array(where, members, "data/reference_X.npy", finite=True)
        if reference.shape[1:] != built.reference_X.shape[1:]:
            raise ModelFileError(f"{where}: data/reference_X.npy has shape {reference.shape}; expected rows of "
                                 f"shape {built.reference_X.shape[1:]}.")
        built.reference_X = reference.astype(built.reference_X.dtype)
    return built


def _rebuild_posterior(where: str, members: dict[str, bytes], built: Any, info: dict[str, Any]) -> Any:
    """The saved family with its saved (finite) parameters, in a layout checked against the rebuilt model."""
    from bnn_ppl.inference.families import flat_layout, resolve_family
    from bnn_ppl.inference.posterior import VariationalPosterior

    try:
        family = resolve_family(info["method"], info["family_options"]).bind(built)
    except BnnPplError as err:
        raise ModelFileError(f"{where}: fit.json's family settings are invalid: {err}") from None
    layout = _layout_json(flat_layout(built.model))
    if layout != info["ordering"]:
        raise ModelFileError(
            f"{where}: the parameter layout saved ({info['ordering']}) differs from the rebuilt model's "
            f"({layout}); the file was written by an incompatible bnn_ppl."
        )
    d = sum(int(np.prod(shape)) for _, shape in layout)
    n_members = info["members"]
    values = {}
    for name, shape in family.param_shapes(d).items():
        expected = shape if n_members == 1 else (n_members, *shape)
        value = _array(where, members, f"params/{name}.npy", finite=True)
        if value.shape != expected:
            raise ModelFileError(f"{where}: params/{name}.npy has shape {value.shape}; expected {expected}.")
        values[name] = value
    return VariationalPosterior(family, built.model, values, members=n_members)


def from_bytes(data: bytes, *, where: str = "<bytes>") -> tuple[Any, dict]:
    """Rebuild ``(FitResult, metadata)`` from the bytes of a model file.

    Every member is checked before use: sizes (before decompressing), checksums, the JSON type
    of each JSON member, every field of ``fit.json`` and finite parameters; any problem raises
    :class:`~bnn_ppl.errors.ModelFileError` naming the member and field.
    """
    members = _read_members(data, where)
    check_manifest(where, members, _MANIFEST, FORMAT, FORMAT_VERSION)
    spec = _read_spec(where, members)
    info = check_fit_info(where, _json_object(where, members, "fit.json"))
    meta = _json_object(where, members, "metadata.json")
    losses = _array(where, members, "losses.npy").astype(float)
    if losses.ndim != (1 if info["members"] == 1 else 2) or (losses.ndim == 2 and losses.shape[0] != info["members"]):
        raise ModelFileError(f"{where}: losses.npy has shape {losses.shape}; expected one row per ensemble member "
                             f"({info['members']}).")
    if len(info["member_seeds"]) not in (0, info["members"]):
        raise ModelFileError(f"{where}: fit.json lists {len(info['member_seeds'])} member_seeds for "
                             f"{info['members']} members; the file was edited. Save the model again.")
    built = _rebuild_model(where, members, spec, info)
    posterior = _rebuild_posterior(where, members, built, info)
    from bnn_ppl.result import FitResult

    result = FitResult(
        built=built,
        posterior=posterior,
        losses=losses if losses.ndim == 1 else losses.mean(axis=0),
        member_losses=None if losses.ndim == 1 else losses,
        member_seeds=tuple(info["member_seeds"]),
        mc_draws=info["mc_draws"],
        elbo=ELBO(**info["elbo"]),
        engine=info["engine"],
        backend=info["backend"],
        learning_rate=float(info["learning_rate"]),
        n_steps=info["n_steps"],
        random_seed=info["random_seed"],
        timings={k: float(v) for k, v in info["timings"].items()},
        interrupted=info["interrupted"],
        stop_reason=info["stop_reason"],
        lr_floor=float(info["lr_floor"]),
    )
    return result, meta

"""Specs as data: dicts, TOML and JSON files with a ``schema_version``. Nothing is executed."""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import tomllib
from pathlib import Path
from typing import Any

import tomli_w

from bnn_ppl.errors import SpecError
from bnn_ppl.spec.layers import LAYERS, Layer
from bnn_ppl.spec.likelihoods import LIKELIHOODS, Likelihood
from bnn_ppl.spec.network import Network
from bnn_ppl.spec.priors import PRIORS, Prior

__all__ = ["SCHEMA_VERSION", "spec_to_dict", "spec_from_dict", "load_spec", "dump_spec", "dumps_spec"]

#: Version of the spec file format this package writes and the newest it reads.
SCHEMA_VERSION = 1
#: The layer kind of a ``[[layers]]`` table without a ``kind`` field.
DEFAULT_LAYER_KIND = "dense"
_HEADER = "# bnn_ppl network spec; edit freely, `bnn-ppl validate FILE` checks it.\n"


def _kinded_to_dict(obj: Prior | Likelihood) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": obj.kind}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if value is None:  # unset optional fields (TOML has no null)
            continue
        out[f.name] = _kinded_to_dict(value) if isinstance(value, Prior) else value
    return out


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _layer_to_dict(layer: Layer) -> dict[str, Any]:
    """Every set field of the layer; ``kind`` is left out for the default kind (dense)."""
    out: dict[str, Any] = {} if layer.kind == DEFAULT_LAYER_KIND else {"kind": layer.kind}
    priors = {}
    for f in dataclasses.fields(layer):
        value = getattr(layer, f.name)
        if value is None:
            continue
        if isinstance(value, Prior):
            priors[f.name] = _kinded_to_dict(value)
        else:
            out[f.name] = _plain(value)
    return {**out, **priors}


def spec_to_dict(spec: Network) -> dict[str, Any]:
    """Plain-data form of ``spec`` (JSON/TOML-ready), with ``schema_version``."""
    out: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "name": spec.name}
    if spec.input_dim is not None:
        out["input_dim"] = spec.input_dim
    elif spec.input_shape is not None:
        out["input_shape"] = list(spec.input_shape)
    out["prior"] = _kinded_to_dict(spec.prior)
    out["bias_prior"] = _kinded_to_dict(spec.bias_prior)
    out["likelihood"] = _kinded_to_dict(spec.likelihood)
    out["layers"] = [_layer_to_dict(layer) for layer in spec.layers]
    return out


def _check_keys(where: str, data: Any, allowed: set[str], required: set[str] = frozenset()) -> dict:
    if not isinstance(data, dict):
        raise SpecError(f"{where} must be a table (mapping). Got {data!r} instead.")
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise SpecError(f"{where} has unknown field(s) {unknown}; allowed fields are {sorted(allowed)}.")
    missing = sorted(required - set(data))
    if missing:
        raise SpecError(f"{where} is missing required field(s) {missing}.")
    return data


def _kinded_from_dict(where: str, data: Any, registry: Any) -> Any:
    if not isinstance(data, dict) or "kind" not in data:
        raise SpecError(f"{where} must be a table with a 'kind' field, one of {registry.names()}. Got {data!r}.")
    cls = registry.get(data["kind"], field=f"{where}.kind")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    _check_keys(where, data, set(fields) | {"kind"})
    kwargs = {}
    for key, value in data.items():
        if key == "kind":
            continue
        if isinstance(value, dict):
            value = _kinded_from_dict(f"{where}.{key}", value, PRIORS)
        kwargs[key] = value
    try:
        return cls(**kwargs)
    except (TypeError, SpecError) as err:
        raise SpecError(f"{where}: {err}") from None


def _layer_from_dict(i: int, data: Any) -> Layer:
    where = f"layers[{i}]"
    if not isinstance(data, dict):
        raise SpecError(f"{where} must be a table (mapping). Got {data!r} instead.")
    cls = LAYERS.get(data.get("kind", DEFAULT_LAYER_KIND), field=f"{where}.kind")
    fields = {f.name for f in dataclasses.fields(cls)}
    required = {f.name for f in dataclasses.fields(cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    _check_keys(where, data, fields | {"kind"}, required=required)
    kwargs = {}
    for key, value in data.items():
        if key == "kind":
            continue
        kwargs[key] = _kinded_from_dict(f"{where}.{key}", value, PRIORS) if isinstance(value, dict) else value
    try:
        return cls(**kwargs)
    except (TypeError, SpecError) as err:
        raise SpecError(f"{where}: {err}") from None


def spec_from_dict(data: Any) -> Network:
    """Build and validate a :class:`Network` from its plain-data form.

    Raises
    ------
    SpecError
        Naming the field at fault, what was expected and what was given.
    """
    allowed = {"schema_version", "name", "input_dim", "input_shape", "prior", "bias_prior", "likelihood", "layers"}
    _check_keys("The spec", data, allowed, required={"schema_version", "layers", "likelihood"})
    version = data["schema_version"]
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise SpecError(f"'schema_version' must be a positive integer. Got {version!r} instead.")
    if version > SCHEMA_VERSION:
        raise SpecError(
            f"This spec has schema_version {version}, newer than the {SCHEMA_VERSION} this bnn_ppl "
            "reads; upgrade bnn_ppl."
        )
    layers = data["layers"]
    if not isinstance(layers, list):
        raise SpecError(f"'layers' must be an array of tables ([[layers]] in TOML). Got {layers!r} instead.")
    kwargs: dict[str, Any] = {
        "layers": [_layer_from_dict(i, layer) for i, layer in enumerate(layers)],
        "likelihood": _kinded_from_dict("likelihood", data["likelihood"], LIKELIHOODS),
    }
    for key in ("prior", "bias_prior"):
        if key in data:
            kwargs[key] = _kinded_from_dict(key, data[key], PRIORS)
    for key in ("name", "input_dim", "input_shape"):
        if key in data:
            kwargs[key] = data[key]
    return Network(**kwargs)


def _format(path: Path, fmt: str | None) -> str:
    fmt = fmt or path.suffix.lstrip(".").lower()
    if fmt not in ("toml", "json"):
        raise SpecError(f"Spec files must end in .toml or .json (or pass format=). Got {str(path)!r}.")
    return fmt


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object, refusing a key given twice (TOML refuses it too; JSON would keep the last)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"the key {key!r} appears twice in one object")
        out[key] = value
    return out


def load_spec(path: str | os.PathLike, format: str | None = None) -> Network:
    """Read a TOML or JSON spec file.

    Examples
    --------
    >>> from bnn_ppl import Bernoulli, Dense, Network, dump_spec
    >>> dump_spec(Network([Dense(5), Dense(1, "identity")], Bernoulli(), input_dim=2), "tiny.toml")
    >>> load_spec("tiny.toml").n_params()
    21
    """
    path = Path(path)
    fmt = _format(path, format)
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark (Windows editors) is not TOML
    except FileNotFoundError:
        raise SpecError(f"No spec file at {str(path)!r}.") from None
    except IsADirectoryError:
        raise SpecError(f"{str(path)!r} is a directory; give the path of a .toml or .json spec file.") from None
    except PermissionError:
        raise SpecError(f"{str(path)!r} cannot be read (permission denied).") from None
    except UnicodeDecodeError as err:
        raise SpecError(
            f"{path} is not UTF-8 text (byte {err.start}: {err.reason}); spec files must be UTF-8. "
            "Re-save it with UTF-8 encoding."
        ) from None
    try:
        data = tomllib.loads(text) if fmt == "toml" else json.loads(text, object_pairs_hook=_unique_keys)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, ValueError) as err:
        raise SpecError(f"{path} is not valid {fmt.upper()}: {err}") from None
    except RecursionError:
        raise SpecError(f"{path} nests its tables too deeply to be a spec.") from None
    try:
        return spec_from_dict(data)
    except SpecError as err:
        raise SpecError(f"{path}: {err}") from None


def dumps_spec(spec: Network, format: str = "toml") -> str:
    """The text of ``spec`` in TOML (with a header comment) or JSON."""
    data = spec_to_dict(spec)
    if format == "toml":
        return _HEADER + tomli_w.dumps(data)
    if format == "json":
        return json.dumps(data, indent=2) + "\n"
    raise SpecError(f"The 'format' parameter must be 'toml' or 'json'. Got {format!r} instead.")


def dump_spec(spec: Network, path: str | os.PathLike, format: str | None = None) -> None:
    """Write ``spec`` to a TOML or JSON file atomically (temporary file, then rename).

    The file gets the permissions of any file the user creates (``0o666`` less the umask).

    Raises
    ------
    FileNotFoundError, NotADirectoryError
        The directory of ``path`` does not exist, or is a file (the message names both).
    """
    path = Path(path)
    text = dumps_spec(spec, _format(path, format))
    write_atomic(path, text.encode("utf-8"))


def _check_parent(path: Path) -> None:
    parent = path.parent
    if not parent.exists():
        raise FileNotFoundError(
            f"Cannot write {str(path)!r}: its directory {str(parent)!r} does not exist. Create it first "
            "(for example Path(...).mkdir(parents=True)) or choose another path."
        )
    if not parent.is_dir():
        raise NotADirectoryError(f"Cannot write {str(path)!r}: {str(parent)!r} is a file, not a directory.")


def _create_temporary(path: Path) -> tuple[int, Path]:
    """A new, exclusive temporary file next to ``path``, created with mode 0o666 (the umask applies)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"Could not create a temporary file next to {str(path)!r}.")  # pragma: no cover


def write_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically: a temporary file in the same directory, flushed to
    disk, then renamed over ``path``, so readers see the old file or the complete new one.

    Shared by :func:`dump_spec` and :func:`bnn_ppl.io.save`. The file gets ``0o666`` less the
    umask, like any file the user creates (``tempfile.mkstemp`` would give 0o600).

    Raises
    ------
    FileNotFoundError, NotADirectoryError
        The directory of ``path`` does not exist, or is a file; the message names ``path``.
    IsADirectoryError
        ``path`` is a directory.
    """
    path = Path(path)
    _check_parent(path)
    if path.is_dir():
        raise IsADirectoryError(f"{str(path)!r} is a directory; give a file name inside it, e.g. {str(path / 'model.bnn')!r}.")
    fd, tmp = _create_temporary(path)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path

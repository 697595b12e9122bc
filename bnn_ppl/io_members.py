"""Reading the members of a model file: presence, JSON and ``.npy`` checks, each naming the member.

Helpers of :mod:`bnn_ppl.io` (which keeps the size limits users may raise); every problem raises
:class:`~bnn_ppl.ModelFileError`.
"""

from __future__ import annotations

import hashlib
import io
import json
import reprlib
from typing import Any

import numpy as np

from bnn_ppl.errors import ModelFileError

__all__ = ["member", "parse_json", "json_object", "array", "check_manifest"]


def member(where: str, members: dict[str, bytes], name: str) -> bytes:
    if name not in members:
        raise ModelFileError(f"{where}: the member {name} is missing; the file is incomplete. Save the model again.")
    return members[name]


def parse_json(where: str, name: str, data: bytes) -> Any:
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelFileError(f"{where}: {name} is not valid JSON ({err}); the file is corrupted.") from None


def json_object(where: str, members: dict[str, bytes], name: str) -> dict:
    """The member ``name``, which must hold a JSON object."""
    value = parse_json(where, name, member(where, members, name))
    if not isinstance(value, dict):
        raise ModelFileError(
            f"{where}: {name} must hold a JSON object. Got a {type(value).__name__} ({reprlib.repr(value)}) "
            "instead; the file was edited or is corrupted. Save the model again."
        )
    return value


def array(where: str, members: dict[str, bytes], name: str, *, finite: bool = False) -> np.ndarray:
    """The ``.npy`` member ``name`` (numbers only; with ``finite``, no NaN or infinity either)."""
    try:
        arr = np.load(io.BytesIO(member(where, members, name)), allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise ModelFileError(f"{where}: {name} is not a valid .npy array ({err}).") from None
    if arr.dtype.kind not in "biuf":
        raise ModelFileError(f"{where}: {name} must hold numbers. Got dtype {arr.dtype}.")
    if finite and not np.all(np.isfinite(arr)):
        bad = int(np.count_nonzero(~np.isfinite(arr)))
        raise ModelFileError(
            f"{where}: {name} holds {bad} NaN or infinite value(s) of {arr.size}; a model with them cannot "
            "predict. The file was edited or the fit diverged: refit and save again."
        )
    return arr


def check_manifest(where: str, members: dict[str, bytes], manifest_name: str, fmt: str, fmt_version: int) -> None:
    """The manifest names the format, a readable version and the SHA-256 of every other member."""
    manifest = parse_json(where, manifest_name, members[manifest_name])
    if not isinstance(manifest, dict) or manifest.get("format") != fmt:
        raise ModelFileError(f"{where} is not a bnn_ppl model file (its manifest lacks format={fmt!r}).")
    version = manifest.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ModelFileError(f"{where}: format_version must be a positive integer. Got {version!r}.")
    if version > fmt_version:
        versions = manifest.get("versions")
        saved_by = versions.get("bnn_ppl", "unknown") if isinstance(versions, dict) else "unknown"
        raise ModelFileError(
            f"{where} has format_version {version}, newer than the {fmt_version} this bnn_ppl reads "
            f"(it was saved by bnn_ppl {saved_by}); upgrade bnn_ppl to load it."
        )
    expected = manifest.get("members")
    if not isinstance(expected, dict) or not all(isinstance(d, str) for d in expected.values()):
        raise ModelFileError(f"{where}: the manifest has no member checksums; the file is corrupted.")
    present = set(members) - {manifest_name}
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

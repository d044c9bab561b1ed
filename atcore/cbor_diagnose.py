"""Why bytes are not canonical DAG-CBOR, in words, for the people who must fix their encoder.

atcore.cbor's strict decoder says only that something is wrong. Here the bytes are read again
leniently (cbor2, which takes any well-formed CBOR) and the first departure from DAG-CBOR
(spec-data-model.md) is named with its place, as `$.ops[0].cid`: a float, a map key that is
not a string, keys out of canonical order, a tag other than 42, a malformed CID link, an
integer outside 64 bits, a simple value other than true/false/null; then, once the value
itself is fine, the first encoding that is not the shortest (an integer, a length or a tag
written in more bytes than needed) or an indefinite length. Diagnostics only: never on a path
where bytes are accepted.
"""

from __future__ import annotations

import io
from typing import Any

import cbor2

_CID_TAG = 42


def diagnose(data: bytes) -> str | None:
    """What makes `data` not canonical DAG-CBOR and where, or None when nothing is found."""
    stream = io.BytesIO(data)
    try:
        value = cbor2.CBORDecoder(stream).decode()
    except (cbor2.CBORDecodeError, ValueError, EOFError, RecursionError) as exc:
        return f"not well-formed CBOR: {exc}"
    if stream.tell() != len(data):
        return f"{len(data) - stream.tell()} trailing bytes after the value"
    problem = _value_problem(value, "$")
    if problem is not None:
        return problem
    canonical = _encode(value)
    if canonical == data:
        return None
    at = next((i for i, (a, b) in enumerate(zip(data, canonical, strict=False)) if a != b), None)
    if at is None:
        at = min(len(data), len(canonical))
    return f"{_encoding_problem(data, at)} at {_path_at(value, at, '$')} (byte {at})"


def _value_problem(value: Any, path: str) -> str | None:
    if isinstance(value, bool) or value is None or isinstance(value, str | bytes):
        return None
    if isinstance(value, int):
        if not -(2**63) <= value < 2**64:
            return f"integer outside the 64-bit range at {path}"
        return None
    if isinstance(value, float):
        return f"float {value!r} at {path} (the data model has no floats)"
    if isinstance(value, list):
        for i, item in enumerate(value):
            if (found := _value_problem(item, f"{path}[{i}]")) is not None:
                return found
        return None
    if isinstance(value, dict):
        keys = list(value)
        for key in keys:
            if not isinstance(key, str):
                return f"map key {key!r:.40} at {path} is not a string"
        ordered = sorted(keys, key=lambda k: (len(k.encode()), k.encode()))
        if keys != ordered:
            first = next(a for a, b in zip(keys, ordered, strict=True) if a != b)
            return (
                f"map keys out of canonical order at {path}: {first!r:.40} comes before a "
                "shorter or smaller key (DAG-CBOR sorts by length, then bytes)"
            )
        for key, item in value.items():
            if (found := _value_problem(item, f"{path}.{key}")) is not None:
                return found
        return None
    if isinstance(value, cbor2.CBORTag):
        if value.tag != _CID_TAG:
            return f"tag {value.tag} at {path} (only tag 42, a CID link, is allowed)"
        raw = value.value
        if not isinstance(raw, bytes) or len(raw) < 2 or raw[0] != 0:
            return f"CID link at {path} is not bytes holding 0x00 then a binary CID"
        return None
    if isinstance(value, cbor2.CBORSimpleValue) or value is cbor2.undefined:
        return f"simple value {value!r} at {path} (only true, false and null are allowed)"
    return f"{type(value).__name__} at {path} is not in the data model"


def _encode(value: Any) -> bytes:
    return cbor2.dumps(value, canonical=True)


def _encoding_problem(data: bytes, at: int) -> str:
    """Name the head that starts the first byte differing from the canonical encoding."""
    head = data[at] if at < len(data) else None
    if head is None:
        return "the value ends early"
    major, info = head >> 5, head & 0x1F
    if info == 31:
        return "indefinite length"
    what = {0: "integer", 1: "negative integer", 6: "tag"}.get(major, "length")
    return f"non-minimal {what} (argument written in more bytes than needed)"


def _path_at(value: Any, offset: int, path: str) -> str:
    """The path of the innermost item whose canonical encoding spans `offset` (the input's
    bytes equal the canonical ones before it, so the layouts agree up to there)."""
    if isinstance(value, dict):
        children: list[tuple[str, Any]] = []
        for key, item in value.items():
            children += [(f"{path} (key {key!r:.40})", key), (f"{path}.{key}", item)]
    elif isinstance(value, list):
        children = [(f"{path}[{i}]", item) for i, item in enumerate(value)]
    elif isinstance(value, cbor2.CBORTag):
        children = [(path, value.value)]
    else:
        return path
    sizes = [len(_encode(child)) for _, child in children]
    pos = len(_encode(value)) - sum(sizes)  # the container's own head
    if offset < pos:
        return path
    for (child_path, child), size in zip(children, sizes, strict=True):
        if offset < pos + size:
            return _path_at(child, offset - pos, child_path)
        pos += size
    return path

"""Strict DAG-CBOR (DRISL) for everything hashed or signed (spec-data-model.md).

Encoding is cbrrr's canonical encoder. Decoding is cbrrr's strict decoder (which already rejects
indefinite lengths, non-canonical or duplicate keys, non-string keys, non-minimal integers,
foreign tags and trailing bytes) followed by one iterative pass for what cbrrr allows but the
atproto data model forbids: floats, CIDs outside the blessed set, and excessive nesting.
"""

from __future__ import annotations

from typing import Any

import cbrrr
from cbrrr import _cbrrr

from atcore.cid import CID, is_valid_cid
from atcore.errors import DecodeError

MAX_DEPTH = 128

_SCALARS = (str, bytes, bool, int, type(None))


def encode(value: Any) -> bytes:
    """Canonical DAG-CBOR bytes of a data-model value (dicts, lists, str, bytes, int, CID...)."""
    _check(value)
    try:
        return cbrrr.encode_dag_cbor(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise DecodeError(f"value cannot be encoded as DAG-CBOR: {exc}") from exc


def decode(data: bytes, max_depth: int = MAX_DEPTH) -> Any:
    """Decode one strict DAG-CBOR value, rejecting anything outside the atproto data model."""
    try:
        value = cbrrr.decode_dag_cbor(bytes(data))
    except (cbrrr.CbrrrDecodeError, ValueError, EOFError, OverflowError, TypeError) as exc:
        raise DecodeError(f"invalid DAG-CBOR: {exc}") from exc
    _check(value, max_depth)
    return value


def _check(value: Any, max_depth: int = MAX_DEPTH) -> None:
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, _SCALARS):
            if type(item) is int and not -(2**63) <= item < 2**64:
                raise DecodeError("integer outside the 64-bit range")
            continue
        if depth >= max_depth:
            raise DecodeError(f"nesting deeper than {max_depth} levels")
        if isinstance(item, dict):
            for key, sub in item.items():
                if not isinstance(key, str):
                    raise DecodeError(f"map key is not a string: {key!r:.40}")
                stack.append((sub, depth + 1))
        elif isinstance(item, list):
            stack.extend((sub, depth + 1) for sub in item)
        elif isinstance(item, CID):
            if not is_valid_cid(item):
                raise DecodeError(f"CID link is not CIDv1 sha2-256 dag-cbor/raw: {item!r:.80}")
        elif isinstance(item, float):
            raise DecodeError("floats are not allowed in the atproto data model")
        else:
            raise DecodeError(f"type {type(item).__name__} is not in the data model")


def decode_prefix(data: bytes, max_depth: int = MAX_DEPTH) -> tuple[Any, int]:
    """Decode the strict DAG-CBOR value at the start of `data`; return it and its length.

    For formats that concatenate values (event-stream frames: header then body); the caller
    decides what may follow.
    """
    try:
        value, length = _cbrrr.decode_dag_cbor(bytes(data), CID, False)
    except (cbrrr.CbrrrDecodeError, ValueError, EOFError, OverflowError, TypeError) as exc:
        raise DecodeError(f"invalid DAG-CBOR: {exc}") from exc
    _check(value, max_depth)
    return value, length

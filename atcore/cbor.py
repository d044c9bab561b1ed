"""Strict DAG-CBOR (DRISL) for everything hashed or signed (spec-data-model.md).

Encoding is cbrrr's canonical encoder. Decoding is cbrrr's strict decoder (which already rejects
indefinite lengths, non-canonical or duplicate keys, non-string keys, non-minimal integers,
foreign tags and trailing bytes) plus what cbrrr allows but the atproto data model forbids:
floats, integers below -2**63, CIDs outside the blessed set and excessive nesting. Scans of
the input bytes, all done in C, prove most inputs free of each; only what a scan cannot clear
(say, a float head byte that may just be part of a hash) is checked on the decoded value.
"""

from __future__ import annotations

import re
from typing import Any

import cbrrr
from cbrrr import _cbrrr

from atcore.cid import CID, is_valid_cid
from atcore.errors import DecodeError

MAX_DEPTH = 128

_SCALARS = (str, bytes, bool, int, type(None))
_PLAIN = frozenset((str, bytes, bool, type(None)))
_KNOWN = _PLAIN | {int, dict, list, CID}
_ONLY_STR = frozenset((str,))
# A negative integer head with an 8-byte argument of 2**63 or more.
_BIG_NEGATIVE = re.compile(rb"\x3b[\x80-\xff]")
_TAG_42 = b"\xd8\x2a"
# Tag 42 over a 37-byte string: 0x00, then CIDv1 sha2-256 with the dag-cbor or raw codec.
_BLESSED_LINKS = (b"\xd8\x2aX\x25\x00\x01\x71\x12\x20", b"\xd8\x2aX\x25\x00\x01\x55\x12\x20")
# The bytes the scan keeps: every nesting level takes an array or map head (0x80-0x9b,
# 0xa0-0xbb) or, for a CID, a tag head (0xd8), so how many the input holds bounds its depth;
# and the heads of floats (0xf9-0xfb) and of 8-byte negative integers (0x3b).
_FLOATISH = bytes((0xF9, 0xFA, 0xFB, 0x3B))
_NOT_MARKS = bytes(
    b for b in range(256) if not (0x80 <= b <= 0x9B or 0xA0 <= b <= 0xBB or b == 0xD8)
).translate(None, _FLOATISH)
_NOT_FLOATISH = bytes(b for b in range(256) if b not in _FLOATISH)
# Above this size the scan is skipped: binary content (hashes, CIDs, embedded CARs) almost
# always holds a byte it cannot clear, so it would cost ~2 ns a byte and then _check runs anyway
# (a #commit frame body: ~7 us of scan wasted on every frame). _check alone is the full check.
_SCAN_MAX = 1024


def encode(value: Any) -> bytes:
    """Canonical DAG-CBOR bytes of a data-model value (dicts, lists, str, bytes, int, CID...)."""
    _check(value)
    try:
        return cbrrr.encode_dag_cbor(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise DecodeError(f"value cannot be encoded as DAG-CBOR: {exc}") from exc


def decode(data: bytes, max_depth: int = MAX_DEPTH) -> Any:
    """Decode one strict DAG-CBOR value, rejecting anything outside the atproto data model."""
    value, length = _decode(data if type(data) is bytes else bytes(data), max_depth)
    if length != len(data):
        raise DecodeError("invalid DAG-CBOR: trailing bytes")
    return value


def decode_prefix(data: bytes, max_depth: int = MAX_DEPTH) -> tuple[Any, int]:
    """Decode the strict DAG-CBOR value at the start of `data`; return it and its length.

    For formats that concatenate values (event-stream frames: header then body); the caller
    decides what may follow.
    """
    return _decode(bytes(data), max_depth)


def decode_prefix_unchecked(data: bytes) -> tuple[Any, int]:
    """The DAG-CBOR value at the start of `data` and its length, as cbrrr's strict decoder reads
    it, without the atproto data-model checks (floats, the 64-bit range, CID kinds, depth): for
    bytes a trusted source already checked."""
    try:
        value, length = _cbrrr.decode_dag_cbor(data, CID, False)
    except (cbrrr.CbrrrDecodeError, ValueError, EOFError, OverflowError, TypeError) as exc:
        raise DecodeError(f"invalid DAG-CBOR: {exc}") from exc
    return value, length


def _decode(data: bytes, max_depth: int) -> tuple[Any, int]:
    value, length = decode_prefix_unchecked(data)
    if length != len(data):
        data = data[:length]
    if length > _SCAN_MAX:
        _check(value, max_depth, decoded=True)
        return value, length
    # One pass in C keeps the bytes that matter (see _NOT_MARKS). Each may also be part of a
    # string or hash (UTF-8 text never holds 0xf9-0xfb): what the scan cannot clear, _check
    # decides on the decoded value.
    marks = data.translate(None, _NOT_MARKS)
    if not marks:
        return value, length
    odd = marks.translate(None, _NOT_FLOATISH)
    ints = b"\x3b" in odd and _BIG_NEGATIVE.search(data) is not None
    if len(marks) > max_depth or odd.strip(b"\x3b"):
        _check(value, max_depth, ints=ints, decoded=True)
    elif ints or (
        # Every real tag 42 starts a "d8 2a" in the input: when each such pair begins a
        # blessed link, so does every CID.
        b"\xd8" in marks and data.count(_TAG_42) != sum(map(data.count, _BLESSED_LINKS))
    ):
        _check(value, max_depth, ints=ints, decoded=True)
    return value, length


def _check(
    value: Any,
    max_depth: int = MAX_DEPTH,
    ints: bool = True,
    links: bool = True,
    decoded: bool = False,
) -> None:
    """Reject what the data model forbids, one nesting level at a time. A container is
    cleared by one C-level scan of its item types unless it holds containers, or holds
    integers or CIDs and `ints` or `links` asks for their values to be checked. A `decoded`
    value is cbrrr's: exact types only, string keys only."""
    level: list[Any]
    if type(value) is dict or type(value) is list:  # the usual root: skip a level of wrapping
        if max_depth <= 0:
            raise DecodeError(f"nesting deeper than {max_depth} levels")
        level, depth = [value], 1
    else:
        level, depth = [(value,)], 0
    while level:
        below: list[Any] = []
        for container in level:
            if isinstance(container, dict):
                if not decoded and not _ONLY_STR.issuperset(map(type, container)):
                    key = next((k for k in container if not isinstance(k, str)), None)
                    if key is not None:
                        raise DecodeError(f"map key is not a string: {key!r:.40}")
                items = container.values()
            else:
                items = container
            kinds = set(map(type, items))
            if kinds <= _PLAIN:
                continue
            if not kinds <= _KNOWN:
                _check_others(items, depth, max_depth, below)
            nested = dict in kinds or list in kinds
            if nested or CID in kinds:
                if depth >= max_depth:
                    raise DecodeError(f"nesting deeper than {max_depth} levels")
                if nested:
                    below += [x for x in items if type(x) is dict or type(x) is list]
                if links and CID in kinds:
                    for x in items:
                        if type(x) is CID and not is_valid_cid(x):
                            raise DecodeError(f"CID link is not CIDv1 sha2-256 dag-cbor/raw: {x}")
            if ints and int in kinds:
                for x in items:
                    if type(x) is int and not -(2**63) <= x < 2**64:
                        raise DecodeError("integer outside the 64-bit range")
        level = below
        depth += 1


def _check_others(items: Any, depth: int, max_depth: int, below: list[Any]) -> None:
    """The items of types outside _KNOWN: subclasses of data-model types, and the rest."""
    for item in items:
        if type(item) in _KNOWN:
            continue
        if isinstance(item, _SCALARS):
            if isinstance(item, int) and not -(2**63) <= item < 2**64:
                raise DecodeError("integer outside the 64-bit range")
            continue
        if depth >= max_depth:
            raise DecodeError(f"nesting deeper than {max_depth} levels")
        if isinstance(item, dict | list):
            below.append(item)
        elif isinstance(item, CID):
            if not is_valid_cid(item):
                raise DecodeError(f"CID link is not CIDv1 sha2-256 dag-cbor/raw: {item!r:.80}")
        elif isinstance(item, float):
            raise DecodeError("floats are not allowed in the atproto data model")
        else:
            raise DecodeError(f"type {type(item).__name__} is not in the data model")

"""The strict MST node decoder and key rules in pure Python (spec-repository.md, "MST Structure").

The C module atcore/mst/_node.c is the same decoder at a sixth of the cost; this one is used when
that module is not built (no C compiler), and is the differential test's oracle for it. It reads
the node with atcore.cbor's strict DAG-CBOR decoder (canonical form, blessed CIDs only) and then
applies the node schema, so the two agree on every input.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from atcore import cbor
from atcore.cid import CID
from atcore.errors import DecodeError, InvalidMst

__all__ = ["MAX_KEY_LENGTH", "MAX_ENTRIES", "decode_fields", "is_valid_key", "key_height"]

MAX_KEY_LENGTH = 1024
# Honest keys give ~4 entries per node; a run of 512 same-height keys has odds below 1e-60,
# so anything longer is a mined tree meant to amplify work (spec "Security Considerations").
MAX_ENTRIES = 512

# `collection/rkey`: exactly one slash, both parts non-empty, repo-path characters only; the
# record key may not be "." or "..".
_KEY = re.compile(rb"[A-Za-z0-9._:~-]+/(?!\.\.?\Z)[A-Za-z0-9._:~-]+")
_SHAPE = "MST entry must be a map with exactly the fields k, p, t and v"
_TYPES = "MST entry field types must be p: int, k: bytes, v: CID link"


def is_valid_key(key: bytes) -> bool:
    """True when `key` is a repo path `collection/rkey` of at most 1024 bytes."""
    return len(key) <= MAX_KEY_LENGTH and _KEY.fullmatch(key) is not None


def key_height(key: bytes) -> int:
    """Leading zero bits of SHA-256(key), counted in 2-bit chunks."""
    digest = int.from_bytes(hashlib.sha256(key).digest(), "big")
    return (256 - digest.bit_length()) // 2


def _head_size(n: int) -> int:
    return 1 if n < 24 else 2 if n < 0x100 else 3 if n < 0x10000 else 5


def _tree_link(value: Any, what: str) -> bytes | None:
    if value is None:
        return None
    if type(value) is not CID or not value.is_cidv1_dag_cbor_sha256_32():
        raise InvalidMst(f"MST {what} link is not a dag-cbor sha2-256 CIDv1")
    return value.cid_bytes


def decode_fields(
    data: bytes,
) -> tuple[
    tuple[tuple[bytes, ...], tuple[bytes, ...], tuple[bytes | None, ...]],
    int | None,
    tuple[int, ...],
]:
    """Decode one node strictly: its fields (keys, binary value CIDs, then the left link and
    each entry's right link), its keys' height (None without entries) and where each entry's
    encoding starts, then the `l` field. See the C module's decode_fields."""
    try:
        obj = cbor.decode(data)
    except DecodeError as exc:
        raise InvalidMst(f"MST node is not strict DAG-CBOR: {exc}") from exc
    if type(obj) is not dict or obj.keys() != {"e", "l"}:
        raise InvalidMst("MST node must be a map with exactly the fields e and l")
    entries = obj["e"]
    if type(entries) is not list:
        raise InvalidMst("MST node field e must be an array")
    if len(entries) > MAX_ENTRIES:
        raise InvalidMst(f"MST node has {len(entries)} entries (limit {MAX_ENTRIES})")
    keys: list[bytes] = []
    vals: list[bytes] = []
    links = [_tree_link(obj["l"], "left")]
    pos = 3 + _head_size(len(entries))
    offsets = [pos]
    prev = b""
    for item in entries:
        if type(item) is not dict or item.keys() != {"k", "p", "t", "v"}:
            raise InvalidMst(_SHAPE)
        p, suffix, value = item["p"], item["k"], item["v"]
        if type(p) is not int or type(suffix) is not bytes or type(value) is not CID:
            raise InvalidMst(_TYPES)
        if not 0 <= p <= len(prev):
            raise InvalidMst(f"MST entry prefix length {p} exceeds the previous key")
        key = prev[:p] + suffix
        if key <= prev:
            raise InvalidMst("MST keys out of order")
        if p < len(prev) and suffix[:1] == prev[p : p + 1]:
            raise InvalidMst("MST entry does not use the maximal shared prefix")
        if not is_valid_key(key):
            raise InvalidMst("invalid MST key in node")
        right = _tree_link(item["t"], "right")
        keys.append(key)
        vals.append(value.cid_bytes)
        links.append(right)
        prev = key
        # The entry's size: its map head and field names (9 bytes), the heads of k and p,
        # k's bytes, and two links of 41 bytes each as CBOR (a null `t`: 1 byte).
        pos += 9 + _head_size(len(suffix)) + len(suffix) + _head_size(p) + 41
        pos += 1 if right is None else 41
        offsets.append(pos)
    heights = {key_height(k) for k in keys}
    if len(heights) > 1:
        raise InvalidMst("MST keys of different heights in one node")
    fields = (tuple(keys), tuple(vals), tuple(links))
    return fields, heights.pop() if heights else None, tuple(offsets)

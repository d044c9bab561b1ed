"""MST keys, key heights and the strict node codec (spec-repository.md, "MST Structure")."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import cbrrr
from cbrrr import _cbrrr

from atcore.cid import CID
from atcore.errors import InvalidMst

__all__ = [
    "MAX_KEY_LENGTH",
    "MAX_ENTRIES",
    "Entry",
    "NodeData",
    "EMPTY_NODE",
    "check_key",
    "is_valid_key",
    "key_height",
    "common_prefix_length",
    "encode_node",
    "decode_node",
    "decode_fields",
    "NodeFields",
    "link_cbor",
    "array_head",
    "entry_head",
    "entries_parts",
    "fields_parts",
    "node_fields",
    "node_data",
    "NULL",
    "L_KEY",
]

MAX_KEY_LENGTH = 1024
# Honest keys give ~4 entries per node; a run of 512 same-height keys has odds below 1e-60,
# so anything longer is a mined tree meant to amplify work (spec "Security Considerations").
MAX_ENTRIES = 512

# `collection/rkey`: exactly one slash, both segments non-empty, repo-path characters only.
_KEY_RE = re.compile(rb"[A-Za-z0-9._:~-]+/[A-Za-z0-9._:~-]+")
_DAG_CBOR_SHA256 = b"\x01\x71\x12\x20"
_ENTRY_FIELDS = {"k", "p", "t", "v"}
NULL = b"\xf6"
L_KEY = b"\x61l"

Entry = tuple[bytes, CID, CID | None]
"""One node entry: full key, record CID, right subtree (keys between this and the next)."""


@dataclass(frozen=True, slots=True)
class NodeData:
    """A decoded MST node: left subtree link and entries with full (uncompressed) keys."""

    left: CID | None
    entries: tuple[Entry, ...]


EMPTY_NODE = NodeData(None, ())


def is_valid_key(key: str | bytes) -> bool:
    """True when `key` is a valid repo path (`collection/rkey`, at most 1024 bytes)."""
    raw = key.encode() if isinstance(key, str) else key
    return (
        len(raw) <= MAX_KEY_LENGTH
        and _KEY_RE.fullmatch(raw) is not None
        and raw.partition(b"/")[2] not in (b".", b"..")
    )


def check_key(key: str | bytes) -> bytes:
    """The key's bytes, or InvalidMst when it is not a valid MST key."""
    if isinstance(key, str):
        if not key.isascii():
            raise InvalidMst(f"MST key must be ASCII: {key!r:.80}")
        raw = key.encode()
    else:
        raw = key
    if not is_valid_key(raw):
        raise InvalidMst(f"invalid MST key: {raw[:80]!r}")
    return raw


def key_height(key: str | bytes) -> int:
    """Leading zero bits of sha256(key), counted in 2-bit chunks (fanout 4)."""
    raw = key.encode() if isinstance(key, str) else key
    digest = int.from_bytes(hashlib.sha256(raw).digest(), "big")
    return (256 - digest.bit_length()) >> 1


def common_prefix_length(a: bytes, b: bytes) -> int:
    """Number of leading bytes shared by `a` and `b`."""
    n = min(len(a), len(b))
    # XOR of the big-endian integers: the highest set bit marks the first differing byte.
    diff = int.from_bytes(a[:n], "big") ^ int.from_bytes(b[:n], "big")
    return n - (diff.bit_length() + 7) // 8


def _head(major: int, n: int) -> bytes:
    """A CBOR item head with the minimal-length argument (DAG-CBOR canonical form)."""
    if n < 24:
        return bytes((major | n,))
    if n < 0x100:
        return bytes((major | 24, n))
    if n < 0x10000:
        return bytes((major | 25,)) + n.to_bytes(2, "big")
    return bytes((major | 26,)) + n.to_bytes(4, "big")


def link_cbor(raw: bytes | None) -> bytes:
    """A link as DAG-CBOR: tag 42 over a byte string of 0x00 and the binary CID; null for None."""
    if raw is None:
        return NULL
    if len(raw) == 36:
        return b"\xd8\x2aX\x25\x00" + raw
    return b"\xd8\x2a" + _head(0x40, len(raw) + 1) + b"\x00" + raw


def array_head(n: int) -> bytes:
    """A node's map head, its `e` key and the head of an n-entry array."""
    return b"\xa2\x61e" + _head(0x80, n)


def entry_head(prev: bytes, key: bytes) -> bytes:
    """An entry's map head, `k` (the key's suffix after the shared prefix), `p`, and `t`'s key.

    Map keys in DAG-CBOR order: k, p, t, v; the entry continues with its `t` and `v` parts.
    """
    p = common_prefix_length(prev, key) if prev else 0
    n = len(key) - p
    k_head = b"\xa4\x61kX" + bytes((n,)) if 24 <= n < 0x100 else b"\xa4\x61k" + _head(0x40, n)
    p_part = b"\x61p" + bytes((p,)) + b"\x61t" if p < 24 else b"\x61p" + _head(0, p) + b"\x61t"
    return k_head + key[p:] + p_part


def entries_parts(
    prev: bytes, keys: tuple[bytes, ...], vals: tuple[bytes, ...], rights: tuple[bytes | None, ...]
) -> tuple[bytes, ...]:
    """Three encoded parts per entry: entry_head, the `t` link, then `v` with its link."""
    out: list[bytes] = []
    for key, val, right in zip(keys, vals, rights, strict=True):
        out += (entry_head(prev, key), link_cbor(right), b"\x61v" + link_cbor(val))
        prev = key
    return tuple(out)


def fields_parts(fields: NodeFields) -> tuple[bytes, ...]:
    """A node's canonical DAG-CBOR in parts: array_head, entries_parts, then the `l` field."""
    left, keys, vals, rights = fields
    body = entries_parts(b"", keys, vals, rights)
    return (array_head(len(keys)), *body, L_KEY, link_cbor(left))


def node_fields(node: NodeData) -> NodeFields:
    """A NodeData's links as binary CIDs."""
    entries = node.entries
    return (
        None if node.left is None else node.left.cid_bytes,
        tuple(e[0] for e in entries),
        tuple(e[1].cid_bytes for e in entries),
        tuple(None if e[2] is None else e[2].cid_bytes for e in entries),
    )


def node_data(fields: NodeFields) -> NodeData:
    """Fields with binary CIDs as a NodeData with CID objects."""
    left, keys, vals, rights = fields
    links = (None if r is None else CID(r) for r in rights)
    entries = tuple(zip(keys, map(CID, vals), links, strict=True))
    return NodeData(None if left is None else CID(left), entries)


def encode_node(node: NodeData) -> bytes:
    """Canonical DAG-CBOR of a node, keys prefix-compressed against the previous entry."""
    return b"".join(fields_parts(node_fields(node)))


NodeFields = tuple[bytes | None, tuple[bytes, ...], tuple[bytes, ...], tuple[bytes | None, ...]]
"""A decoded node as binary CIDs: left link, keys, values, right links."""


def _tree_link(value: object, what: str) -> bytes | None:
    # cbrrr hands links to the constructor as bytearray, which nothing else decodes to.
    if value is None:
        return None
    if type(value) is not bytearray or len(value) != 36 or not value.startswith(_DAG_CBOR_SHA256):
        raise InvalidMst(f"MST {what} link is not a dag-cbor sha2-256 CIDv1: {value!r:.80}")
    return bytes(value)


def decode_fields(data: bytes) -> NodeFields:
    """Decode one node, rejecting anything but the exact schema and a sorted, same-height layout.

    Height against the node's position, and emptiness rules, are checked by the tree walkers.
    """
    try:
        obj, length = _cbrrr.decode_dag_cbor(data, bytearray, False)
    except (cbrrr.CbrrrDecodeError, ValueError, EOFError, OverflowError, TypeError) as exc:
        raise InvalidMst(f"MST node is not strict DAG-CBOR: {exc}") from exc
    if length != len(data):
        raise InvalidMst("MST node is not strict DAG-CBOR: trailing bytes")
    if type(obj) is not dict or obj.keys() != {"e", "l"}:
        raise InvalidMst("MST node must be a map with exactly the fields e and l")
    left = _tree_link(obj["l"], "left")
    raw_entries = obj["e"]
    if type(raw_entries) is not list:
        raise InvalidMst("MST node field e must be an array")
    if len(raw_entries) > MAX_ENTRIES:
        raise InvalidMst(f"MST node has {len(raw_entries)} entries (limit {MAX_ENTRIES})")
    keys: list[bytes] = []
    vals: list[bytes] = []
    rights: list[bytes | None] = []
    prev = b""
    height = -1
    for raw in raw_entries:
        if type(raw) is not dict or raw.keys() != _ENTRY_FIELDS:
            raise InvalidMst("MST entry must be a map with exactly the fields k, p, t and v")
        p, suffix, value = raw["p"], raw["k"], raw["v"]
        if type(p) is not int or type(suffix) is not bytes or type(value) is not bytearray:
            raise InvalidMst("MST entry field types must be p: int, k: bytes, v: CID link")
        if not 0 <= p <= len(prev):
            raise InvalidMst(f"MST entry prefix length {p} exceeds the previous key")
        key = prev[:p] + suffix
        if not is_valid_key(key):
            raise InvalidMst(f"invalid MST key in node: {key[:80]!r}")
        if key <= prev:
            raise InvalidMst(f"MST keys out of order: {key!r} after {prev!r}")
        # Maximal prefix: the suffix must not start with the previous key's next byte.
        if p < len(prev) and suffix[:1] == prev[p : p + 1]:
            raise InvalidMst(f"MST entry for {key!r} does not use the maximal shared prefix")
        h = key_height(key)
        if height != h and height != -1:
            raise InvalidMst(f"MST keys of different heights in one node: {key!r}")
        height = h
        keys.append(key)
        vals.append(bytes(value))
        rights.append(_tree_link(raw["t"], "right"))
        prev = key
    return left, tuple(keys), tuple(vals), tuple(rights)


def decode_node(data: bytes) -> NodeData:
    """Decode one node strictly (see decode_fields), links as CID objects."""
    return node_data(decode_fields(data))

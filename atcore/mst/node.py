"""MST keys, key heights and the strict node codec (spec-repository.md, "MST Structure")."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

import cbrrr

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
]

MAX_KEY_LENGTH = 1024
# Honest keys give ~4 entries per node; a run of 512 same-height keys has odds below 1e-60,
# so anything longer is a mined tree meant to amplify work (spec "Security Considerations").
MAX_ENTRIES = 512

# `collection/rkey`: exactly one slash, both segments non-empty, repo-path characters only.
_KEY_RE = re.compile(rb"[A-Za-z0-9._:~-]+/[A-Za-z0-9._:~-]+")
_CID_PREFIX = b"\xd8\x2a"  # CBOR tag 42, followed by a byte string of 0x00 + binary CID

Entry = tuple[bytes, CID, CID | None]
"""One node entry: full key, record CID, right subtree (keys between this and the next)."""


@dataclass(frozen=True, slots=True)
class NodeData:
    """A decoded MST node: left subtree link and entries with full (uncompressed) keys.

    `fragments` caches each entry's encoded bytes (None where not yet known). Edits made with
    the methods below keep the fragments of untouched entries, so re-encoding a node after a
    one-entry change costs one entry, not the whole node: the hot path of every put.
    """

    left: CID | None
    entries: tuple[Entry, ...]
    fragments: tuple[bytes | None, ...] | None = field(default=None, compare=False, repr=False)

    def with_left(self, left: CID | None) -> NodeData:
        return NodeData(left, self.entries, self.fragments)

    def with_right(self, i: int, right: CID | None) -> NodeData:
        entries = self.entries
        key, value, old = entries[i]
        frags = self.fragments
        frag = frags[i] if frags is not None else None
        if frags is None or frag is None:
            return self.splice(i, i + 1, ((key, value, right),))
        # Only the `t` field changes: patch it between the unchanged key and `v` parts.
        v_len = _field_size(value)
        t_len = 3 if old is None else _field_size(old)
        t_part = b"\x61t\xf6" if right is None else b"\x61t" + _link(right)
        patched = frag[: -(v_len + t_len)] + t_part + frag[-v_len:]
        return NodeData(
            self.left,
            (*entries[:i], (key, value, right), *entries[i + 1 :]),
            (*frags[:i], patched, *frags[i + 1 :]),
        )

    def splice(self, lo: int, hi: int, new: tuple[Entry, ...] = ()) -> NodeData:
        """Replace entries[lo:hi] with `new` (the caller keeps keys sorted)."""
        entries = self.entries
        merged = (*entries[:lo], *new, *entries[hi:])
        frags = self.fragments
        if frags is None:
            return NodeData(self.left, merged)
        # The entry after the splice gets a new predecessor, hence a new prefix length.
        tail = (None, *frags[hi + 1 :]) if hi < len(entries) else ()
        return NodeData(self.left, merged, (*frags[:lo], *((None,) * len(new)), *tail))

    def concat(self, other: NodeData) -> NodeData:
        """This node's entries followed by `other`'s (keeps this node's left link)."""
        if self.fragments is None or other.fragments is None or not other.entries:
            return NodeData(self.left, self.entries + other.entries)
        frags = (*self.fragments, None, *other.fragments[1:])
        return NodeData(self.left, self.entries + other.entries, frags)


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


def _link(cid: CID) -> bytes:
    raw = cid.cid_bytes
    if len(raw) == 36:
        return b"\xd8\x2aX\x25\x00" + raw
    return b"\xd8\x2a" + _head(0x40, len(raw) + 1) + b"\x00" + raw


def _field_size(cid: CID) -> int:
    """Encoded size of a one-letter map key followed by a CID link (what _link emits)."""
    n = len(cid.cid_bytes) + 1
    return n + (5 if n < 24 else 6 if n < 0x100 else 7)


def _encode_entry(prev_key: bytes, entry: Entry) -> bytes:
    """The canonical bytes of one entry map {k, p, t, v}, keys in DAG-CBOR order."""
    key, value, right = entry
    p = common_prefix_length(prev_key, key) if prev_key else 0
    suffix = key[p:]
    n = len(suffix)
    return b"".join(
        (
            b"\xa4\x61kX" + bytes((n,)) if 24 <= n < 0x100 else b"\xa4\x61k" + _head(0x40, n),
            suffix,
            b"\x61p" + bytes((p,)) if p < 24 else b"\x61p" + _head(0x00, p),
            b"\x61t\xf6" if right is None else b"\x61t" + _link(right),
            b"\x61v",
            _link(value),
        )
    )


def encode_node(node: NodeData) -> bytes:
    """Canonical DAG-CBOR of a node, keys prefix-compressed against the previous entry."""
    known = node.fragments
    if known is None or None in known:
        frags = _fill_fragments(node.entries, known)
        object.__setattr__(node, "fragments", frags)  # a cache, not part of the value
    else:
        frags = known  # type: ignore[assignment]  # checked: no holes
    left = node.left
    head = b"\xa2\x61e" + _head(0x80, len(frags))
    tail = b"\x61l\xf6" if left is None else b"\x61l" + _link(left)
    return head + b"".join(frags) + tail


def _fill_fragments(
    entries: tuple[Entry, ...], known: tuple[bytes | None, ...] | None
) -> tuple[bytes, ...]:
    frags: list[bytes] = []
    prev = b""
    for i, entry in enumerate(entries):
        frag = known[i] if known is not None else None
        frags.append(_encode_entry(prev, entry) if frag is None else frag)
        prev = entry[0]
    return tuple(frags)


def _tree_link(value: object, what: str) -> CID | None:
    if value is None:
        return None
    if type(value) is not CID or not value.is_cidv1_dag_cbor_sha256_32():
        raise InvalidMst(f"MST {what} link is not a dag-cbor sha2-256 CIDv1: {value!r:.80}")
    return value


def decode_node(data: bytes) -> NodeData:
    """Decode one node, rejecting anything but the exact schema and a sorted, same-height layout.

    Height against the node's position, and emptiness rules, are checked by the tree walkers.
    """
    try:
        obj = cbrrr.decode_dag_cbor(data)
    except (cbrrr.CbrrrDecodeError, ValueError, EOFError, OverflowError, TypeError) as exc:
        raise InvalidMst(f"MST node is not strict DAG-CBOR: {exc}") from exc
    if type(obj) is not dict or obj.keys() != {"e", "l"}:
        raise InvalidMst("MST node must be a map with exactly the fields e and l")
    left = _tree_link(obj["l"], "left")
    raw_entries = obj["e"]
    if type(raw_entries) is not list:
        raise InvalidMst("MST node field e must be an array")
    if len(raw_entries) > MAX_ENTRIES:
        raise InvalidMst(f"MST node has {len(raw_entries)} entries (limit {MAX_ENTRIES})")
    entries: list[Entry] = []
    prev = b""
    height = -1
    for raw in raw_entries:
        if type(raw) is not dict or raw.keys() != {"k", "p", "t", "v"}:
            raise InvalidMst("MST entry must be a map with exactly the fields k, p, t and v")
        p, suffix, value = raw["p"], raw["k"], raw["v"]
        if type(p) is not int or type(suffix) is not bytes or type(value) is not CID:
            raise InvalidMst("MST entry field types must be p: int, k: bytes, v: CID link")
        if not 0 <= p <= len(prev):
            raise InvalidMst(f"MST entry prefix length {p} exceeds the previous key")
        key = prev[:p] + suffix
        if not is_valid_key(key):
            raise InvalidMst(f"invalid MST key in node: {key[:80]!r}")
        if key <= prev:
            raise InvalidMst(f"MST keys out of order: {key!r} after {prev!r}")
        if prev and common_prefix_length(prev, key) != p:
            raise InvalidMst(f"MST entry for {key!r} does not use the maximal shared prefix")
        h = key_height(key)
        if height not in (-1, h):
            raise InvalidMst(f"MST keys of different heights in one node: {key!r}")
        height = h
        entries.append((key, value, _tree_link(raw["t"], "right")))
        prev = key
    return NodeData(left, tuple(entries))

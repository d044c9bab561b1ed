"""MST keys, key heights and the strict node codec (spec-repository.md, "MST Structure")."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from atcore.cid import CID
from atcore.errors import InvalidMst

try:
    from atcore.mst._node import MAX_ENTRIES, MAX_KEY_LENGTH, decode_fields
    from atcore.mst._node import is_valid_key as _is_valid_key
    from atcore.mst._node import key_height as _key_height
except ImportError:  # installed without a C compiler: the same rules in Python, slower
    from atcore.mst.node_py import MAX_ENTRIES, MAX_KEY_LENGTH, decode_fields
    from atcore.mst.node_py import is_valid_key as _is_valid_key
    from atcore.mst.node_py import key_height as _key_height

    logging.getLogger(__name__).warning(
        "atcore.mst: the C node decoder (atcore/mst/_node.c) is not built; using the "
        "pure-Python one, about six times slower (install gcc and python3-dev, then reinstall)"
    )

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
    "encode_fields",
    "assemble",
    "entry_cbor",
    "entry_head",
    "array_head",
    "link_cbor",
    "link_size",
    "node_fields",
    "node_data",
    "Fields",
    "Offsets",
]

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
    return _is_valid_key(key.encode() if isinstance(key, str) else key)


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
    return _key_height(key.encode() if isinstance(key, str) else key)


def common_prefix_length(a: bytes, b: bytes) -> int:
    """Number of leading bytes shared by `a` and `b`."""
    n = len(a) if len(a) < len(b) else len(b)
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


def _head_size(n: int) -> int:
    """len(_head(major, n))."""
    return 1 if n < 24 else 2 if n < 0x100 else 3 if n < 0x10000 else 5


def link_cbor(raw: bytes | None) -> bytes:
    """A link as DAG-CBOR: tag 42 over a byte string of 0x00 and the binary CID; null for None."""
    if raw is None:
        return b"\xf6"
    if len(raw) == 36:
        return b"\xd8\x2aX\x25\x00" + raw
    return b"\xd8\x2a" + _head(0x40, len(raw) + 1) + b"\x00" + raw


def link_size(raw: bytes | None) -> int:
    """len(link_cbor(raw))."""
    return 1 if raw is None else 3 + _head_size(len(raw) + 1) + len(raw)


def entry_head(prev: bytes, key: bytes) -> bytes:
    """An entry map's head and fields up to `t`'s key, in DAG-CBOR key order (k, p, t, v): `k`
    is the suffix after the prefix shared with the previous key `prev` (b"" for the first
    entry), `p` that prefix's length."""
    p = common_prefix_length(prev, key) if prev else 0
    n = len(key) - p
    return b"".join(
        (
            b"\xa4\x61kX" + bytes((n,)) if 24 <= n < 0x100 else b"\xa4\x61k" + _head(0x40, n),
            key[p:],
            b"\x61p" + bytes((p,)) + b"\x61t" if p < 24 else b"\x61p" + _head(0, p) + b"\x61t",
        )
    )


def entry_cbor(prev: bytes, key: bytes, value: bytes, right: bytes | None) -> bytes:
    """One entry map {k, p, t, v} (see entry_head)."""
    return entry_head(prev, key) + link_cbor(right) + b"\x61v" + link_cbor(value)


def array_head(n: int) -> bytes:
    """A node's bytes up to its first entry: map head, `e` and the head of an n-entry array."""
    return _ARRAY_HEADS[n] if n < 24 else b"\xa2\x61e" + _head(0x80, n)


_ARRAY_HEADS = tuple(b"\xa2\x61e" + bytes((0x80 | n,)) for n in range(24))


Fields = tuple[tuple[bytes, ...], tuple[bytes, ...], tuple[bytes | None, ...]]
"""A node as keys, values and links (the left link, then each entry's right link): binary CIDs."""

Offsets = tuple[int, ...]
"""Where each entry's encoding starts in a node's bytes, then where the `l` field starts."""


def assemble(entries: list[bytes], left: bytes | None) -> tuple[bytes, Offsets]:
    """A node's canonical bytes from its entries' encodings (entry_cbor), with their offsets."""
    head = array_head(len(entries))
    offsets = [pos := len(head)]
    for chunk in entries:
        offsets.append(pos := pos + len(chunk))
    return b"".join((head, *entries, b"\x61l", link_cbor(left))), tuple(offsets)


def encode_fields(fields: Fields) -> tuple[bytes, Offsets]:
    """Canonical DAG-CBOR of a node, keys prefix-compressed against the previous entry."""
    keys, vals, links = fields
    chunks = []
    prev = b""
    for key, value, right in zip(keys, vals, links[1:], strict=True):
        chunks.append(entry_cbor(prev, key, value, right))
        prev = key
    return assemble(chunks, links[0])


def node_fields(node: NodeData) -> Fields:
    """A NodeData's fields with binary CIDs."""
    entries = node.entries
    return (
        tuple(e[0] for e in entries),
        tuple(e[1].cid_bytes for e in entries),
        (
            None if node.left is None else node.left.cid_bytes,
            *(None if e[2] is None else e[2].cid_bytes for e in entries),
        ),
    )


def node_data(fields: Fields) -> NodeData:
    """Fields with binary CIDs as a NodeData with CID objects."""
    keys, vals, links = fields
    rights = (None if r is None else CID(r) for r in links[1:])
    entries = tuple(zip(keys, map(CID, vals), rights, strict=True))
    return NodeData(None if links[0] is None else CID(links[0]), entries)


def encode_node(node: NodeData) -> bytes:
    """Canonical DAG-CBOR of a node, keys prefix-compressed against the previous entry."""
    return encode_fields(node_fields(node))[0]


def decode_node(data: bytes) -> NodeData:
    """Decode one node strictly (see decode_fields), links as CID objects."""
    return node_data(decode_fields(data)[0])

"""MST nodes in working form: raw CID bytes and re-usable encoded parts (spec-repository.md).

A working node is a plain tuple of ints, bytes and tuples of bytes, never holding a CID object:
CPython's cyclic GC stops tracking such tuples after their first collection, so a cache of a
whole repository's nodes costs the collector nothing, where CID-holding nodes made every full
collection walk them all. Links are the CID's binary form (`CID.cid_bytes`).

`parts` is the node's canonical DAG-CBOR split at the fields an edit changes: the map head,
then per entry (its map head with `k`, `p` and the `t` key; the `t` value; `v` with its link),
then the `l` key and its value. An edit swaps a few parts and a node is encoded by one join,
so a put re-encodes nothing but the entry it adds.
"""

from __future__ import annotations

from atcore.mst.node import (
    L_KEY,
    NULL,
    NodeFields,
    array_head,
    entries_parts,
    entry_head,
    fields_parts,
    link_cbor,
)

__all__ = ["Node", "from_fields", "parts", "encode", "leaf", "gap", "with_gap", "splice", "concat"]

Node = tuple[
    int,  # height
    bytes | None,  # left link
    tuple[bytes, ...],  # keys
    tuple[bytes, ...],  # values
    tuple[bytes | None, ...],  # right links
    tuple[bytes, ...] | None,  # parts, None until the node is first encoded or edited
]


def from_fields(height: int, fields: NodeFields) -> Node:
    """A working node from decoded fields (parts are computed on first use)."""
    left, keys, vals, rights = fields
    return height, left, keys, vals, rights, None


def parts(node: Node) -> tuple[bytes, ...]:
    """The node's encoded parts, computed from its fields when not yet known."""
    known = node[5]
    if known is not None:
        return known
    return fields_parts(node[1:5])


def encode(node: Node) -> bytes:
    """The node's canonical DAG-CBOR."""
    return b"".join(parts(node))


def leaf(height: int, key: bytes, value: bytes) -> Node:
    """A node holding one entry and no links."""
    body = (entry_head(b"", key), NULL, b"\x61v" + link_cbor(value))
    return height, None, (key,), (value,), (None,), (b"\xa2\x61e\x81", *body, L_KEY, NULL)


def gap(node: Node, i: int) -> bytes | None:
    """The subtree link just before entry i (the left link for i == 0)."""
    return node[1] if i == 0 else node[4][i - 1]


def with_gap(node: Node, i: int, link: bytes | None) -> Node:
    """The node with the link before entry i replaced."""
    height, left, keys, vals, rights, known = node
    ps = known if known is not None else parts(node)
    if i == 0:
        return height, link, keys, vals, rights, (*ps[:-1], link_cbor(link))
    j = 3 * i - 1  # entry i-1's `t` value
    new_rights = (*rights[: i - 1], link, *rights[i:])
    return height, left, keys, vals, new_rights, (*ps[:j], link_cbor(link), *ps[j + 1 :])


def splice(
    node: Node,
    lo: int,
    hi: int,
    keys: tuple[bytes, ...] = (),
    vals: tuple[bytes, ...] = (),
    rights: tuple[bytes | None, ...] = (),
) -> Node:
    """Replace entries [lo, hi) with the given ones (the caller keeps keys sorted)."""
    height, left, old_keys, old_vals, old_rights, known = node
    ps = known if known is not None else parts(node)
    new_keys = (*old_keys[:lo], *keys, *old_keys[hi:])
    prev = new_keys[lo - 1] if lo else b""
    middle = entries_parts(prev, keys, vals, rights)
    if hi < len(old_keys):
        # The entry after the splice has a new predecessor, hence a new prefix length.
        after = new_keys[lo + len(keys) - 1] if lo + len(keys) else b""
        middle = (*middle, entry_head(after, old_keys[hi]))
        tail = ps[3 * hi + 2 :]
    else:
        tail = ps[-2:]
    return (
        height,
        left,
        new_keys,
        (*old_vals[:lo], *vals, *old_vals[hi:]),
        (*old_rights[:lo], *rights, *old_rights[hi:]),
        (array_head(len(new_keys)), *ps[1 : 3 * lo + 1], *middle, *tail),
    )


def concat(a: Node, b: Node) -> Node:
    """`a`'s entries followed by `b`'s, keeping `a`'s left link and dropping `b`'s."""
    height, left, keys, vals, rights, _ = a
    if not b[2]:
        return a
    pa, pb = parts(a), parts(b)
    first = entry_head(keys[-1], b[2][0]) if keys else pb[1]
    return (
        height,
        left,
        keys + b[2],
        vals + b[3],
        rights + b[4],
        (array_head(len(keys) + len(b[2])), *pa[1:-2], first, *pb[2:-2], *pa[-2:]),
    )

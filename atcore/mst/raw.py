"""MST nodes in working form: their bytes, binary links and entry offsets (spec-repository.md).

A working node is a plain tuple of ints, bytes and tuples of those, never holding a CID object:
CPython's cyclic GC stops tracking such tuples after their first collection, so a cache of a
whole repository's nodes costs the collector nothing, where CID-holding nodes made every full
collection walk them all. Links are the CID's binary form (`CID.cid_bytes`).

The node keeps its canonical bytes (what is hashed and stored) with the offset of each entry.
The edit of every put, swapping one subtree link, splices the new link into those bytes; only
entries added or given a new predecessor are encoded afresh.
"""

from __future__ import annotations

from atcore.mst.node import (
    Fields,
    Offsets,
    array_head,
    encode_fields,
    entry_cbor,
    entry_head,
    link_cbor,
    link_size,
)

__all__ = ["Node", "make", "from_block", "leaf", "with_gap", "splice", "concat"]

Node = tuple[
    int,  # height
    bytes,  # canonical DAG-CBOR
    tuple[bytes, ...],  # keys
    tuple[bytes, ...],  # values
    tuple[bytes | None, ...],  # links: the left link, then each entry's right link
    Offsets,  # each entry's start in the bytes, then the `l` field's
]


def make(height: int, fields: Fields) -> Node:
    """A working node encoded from its fields."""
    data, offsets = encode_fields(fields)
    keys, vals, links = fields
    return height, data, keys, vals, links, offsets


def from_block(height: int, data: bytes, fields: Fields, offsets: Offsets) -> Node:
    """A working node for a block and what decode_fields found in it."""
    keys, vals, links = fields
    return height, data, keys, vals, links, offsets


def leaf(height: int, key: bytes, value: bytes) -> Node:
    """A node holding one entry and no links."""
    return make(height, ((key,), (value,), (None, None)))


def with_gap(node: Node, i: int, link: bytes | None) -> Node:
    """The node with links[i] (the link before entry i) replaced."""
    height, data, keys, vals, links, offsets = node
    old = links[i]
    if old == link:  # e.g. an insert into a leaf, whose gaps stay empty
        return node
    new_links = list(links)
    new_links[i] = link
    if i == 0:  # the `l` field closes the node
        start, end = offsets[-1] + 2, len(data)
    else:
        # Entry i-1 ends with `t` and its link, then `v` and its link (a record CID, 36 bytes
        # in practice). Tree links are always 36-byte CIDs: 41 bytes as CBOR.
        value = vals[i - 1]
        end = offsets[i] - (43 if len(value) == 36 else 2 + link_size(value))
        start = end - (1 if old is None else 41)
    if old is not None and link is not None:
        # The hot path of every put: only the CID's 36 bytes after the tag's head change.
        data = b"".join((data[: end - 36], link, data[end:]))
        return height, data, keys, vals, tuple(new_links), offsets
    encoded = link_cbor(link)
    shift = len(encoded) - (end - start)
    if shift and i:
        offsets = (*offsets[:i], *(o + shift for o in offsets[i:]))
    data = b"".join((data[:start], encoded, data[end:]))
    return height, data, keys, vals, tuple(new_links), offsets


def _tail_size(value: bytes, right: bytes | None) -> int:
    """Size of an entry's encoding after entry_head: `t`'s link, `v` and its link."""
    return (1 if right is None else 41) + (43 if len(value) == 36 else 2 + link_size(value))


def splice(
    node: Node,
    lo: int,
    hi: int,
    keys: tuple[bytes, ...] = (),
    vals: tuple[bytes, ...] = (),
    rights: tuple[bytes | None, ...] = (),
) -> Node:
    """Replace entries [lo, hi) with the given ones (the caller keeps keys sorted).

    The bytes before entry lo and after entry hi are copied as they are, except that entry
    hi, given a new predecessor, gets a new entry_head (its prefix length changes).
    """
    height, data, old_keys, old_vals, links, offsets = node
    n = len(old_keys)
    head = array_head(n - (hi - lo) + len(keys))
    first = offsets[0]
    base = len(head) - first  # non-zero only when the entry count crosses 24 or 256
    new_offsets = [o + base for o in offsets[:lo]] if base else list(offsets[:lo])
    out = [head, data[first : offsets[lo]]]
    pos = offsets[lo] + base
    prev = old_keys[lo - 1] if lo else b""
    for key, value, right in zip(keys, vals, rights, strict=True):
        chunk = entry_cbor(prev, key, value, right)
        new_offsets.append(pos)
        out.append(chunk)
        pos += len(chunk)
        prev = key
    new_offsets.append(pos)
    if hi < n:
        end = offsets[hi + 1]
        tail = end - _tail_size(old_vals[hi], links[hi + 1])
        renewed = entry_head(prev, old_keys[hi])
        out += (renewed, data[tail:])
        shift = pos + len(renewed) - tail
        new_offsets += [o + shift for o in offsets[hi + 1 :]]
    else:
        out.append(data[offsets[n] :])
    return (
        height,
        b"".join(out),
        old_keys[:lo] + keys + old_keys[hi:],
        old_vals[:lo] + vals + old_vals[hi:],
        links[: lo + 1] + rights + links[hi + 1 :],
        tuple(new_offsets),
    )


def concat(a: Node, b: Node) -> Node:
    """`a`'s entries followed by `b`'s, keeping `a`'s left link and dropping `b`'s."""
    height, a_data, a_keys, a_vals, a_links, _ = a
    _, b_data, b_keys, b_vals, b_links, _ = b
    if not b_keys:
        return a
    na = len(a_keys)
    a_offsets, b_offsets = a[5], b[5]
    head = array_head(na + len(b_keys))
    base = len(head) - a_offsets[0]
    new_offsets = [o + base for o in a_offsets[:na]]
    pos = a_offsets[na] + base
    new_offsets.append(pos)
    # b's first entry gets a new predecessor (a's last key), hence a new entry_head.
    first = entry_head(a_keys[-1] if na else b"", b_keys[0])
    tail = b_offsets[1] - _tail_size(b_vals[0], b_links[1])
    shift = pos + len(first) - tail
    new_offsets.extend(o + shift for o in b_offsets[1:])
    data = b"".join(
        (
            head,
            a_data[a_offsets[0] : a_offsets[na]],
            first,
            b_data[tail : b_offsets[-1]],
            a_data[a_offsets[na] :],
        )
    )
    links = a_links + b_links[1:]
    return height, data, a_keys + b_keys, a_vals + b_vals, links, tuple(new_offsets)

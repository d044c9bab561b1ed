"""Reading a whole MST: in-order walks, key ranges, node order for CARs, full validation.

spec-repository.md: "MST Structure" (canonical layout) and "CAR File Serialization" (pre-order).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator

from atcore.blockstore import BlockStore
from atcore.cid import CID
from atcore.errors import InvalidMst
from atcore.mst.node import MAX_KEY_LENGTH
from atcore.mst.raw import Node
from atcore.mst.store import NodeStore, as_node_store

__all__ = ["walk", "list_range", "iter_nodes", "iter_car_order", "validate_tree"]


def walk(store: BlockStore, root: CID) -> Iterator[tuple[str, CID]]:
    """Every (key, value) in key order."""
    return list_range(store, root)


def list_range(
    store: BlockStore,
    root: CID,
    start: str | None = None,
    end: str | None = None,
    reverse: bool = False,
    limit: int | None = None,
) -> Iterator[tuple[str, CID]]:
    """(key, value) pairs with start < key < end (both bounds exclusive, as listRecords
    cursors are), ascending or descending; subtrees outside the range are never loaded."""
    ns = as_node_store(store)
    lo = _bound(start)
    hi = _bound(end)
    items = _range(ns, ns.root(root.cid_bytes), lo, hi, reverse)
    for count, (key, value) in enumerate(items):
        if limit is not None and count >= limit:
            return
        yield key.decode(), CID(value)


def _bound(text: str | None) -> bytes | None:
    # Bounds need not be keys themselves (a collection prefix like "app.bsky.feed.post/").
    if text is None:
        return None
    raw = text.encode()
    if len(raw) > MAX_KEY_LENGTH:
        raise InvalidMst(f"range bound longer than {MAX_KEY_LENGTH} bytes")
    return raw


def _range(
    ns: NodeStore, node: Node, lo: bytes | None, hi: bytes | None, rev: bool
) -> Iterator[tuple[bytes, bytes]]:
    height, _, keys, vals, links, _ = node
    # Entries strictly inside the bounds are keys[first:last]; the gaps that can hold keys in
    # range are links[first] (the one before `first`) through links[last].
    first = 0 if lo is None else bisect_left(keys, lo)
    if lo is not None and first < len(keys) and keys[first] == lo:
        first += 1
    last = len(keys) if hi is None else bisect_left(keys, hi)
    slots: list[tuple[bytes, bytes] | bytes | None] = [links[first]]
    for j in range(first, last):
        slots.append((keys[j], vals[j]))
        slots.append(links[j + 1])
    if rev:
        slots.reverse()
    for slot in slots:
        if isinstance(slot, tuple):
            yield slot
        elif slot is not None:
            yield from _range(ns, ns.node(slot, height - 1), lo, hi, rev)


def iter_nodes(store: BlockStore, root: CID) -> Iterator[CID]:
    """MST node CIDs in pre-order: a node, then its left subtree, then each entry's right
    subtree in key order (the order getRepo CARs use, records left out)."""
    for cid, is_node in iter_car_order(store, root):
        if is_node:
            yield cid


def iter_car_order(store: BlockStore, root: CID) -> Iterator[tuple[CID, bool]]:
    """(cid, is_mst_node) in the spec's preferred CAR order: each node, then its left subtree,
    then for every entry its record block and its right subtree."""
    ns = as_node_store(store)
    yield from _car_order(ns, root.cid_bytes, ns.root(root.cid_bytes))


def _car_order(ns: NodeStore, link: bytes, node: Node) -> Iterator[tuple[CID, bool]]:
    yield CID(link), True
    height, _, _, vals, links, _ = node
    if links[0] is not None:
        yield from _car_order(ns, links[0], ns.node(links[0], height - 1))
    for value, right in zip(vals, links[1:], strict=True):
        yield CID(value), False
        if right is not None:
            yield from _car_order(ns, right, ns.node(right, height - 1))


def validate_tree(store: BlockStore, root: CID) -> int:
    """Check the whole tree's canonical layout; returns the number of keys.

    Per node (via NodeStore): strict schema, sorted same-height keys, height matching the
    position, no empty node below the root unless it links further down, no links at height
    0, no empty root with a subtree. Across nodes: every key inside its parent's key range.
    Raises InvalidMst naming the offending node.
    """
    ns = as_node_store(store)
    return _validate(ns, root.cid_bytes, ns.root(root.cid_bytes), None, None)


def _validate(ns: NodeStore, link: bytes, node: Node, lo: bytes | None, hi: bytes | None) -> int:
    height, _, keys, _, links, _ = node
    if keys and ((lo is not None and keys[0] <= lo) or (hi is not None and keys[-1] >= hi)):
        raise InvalidMst(f"MST node {CID(link).encode()} holds keys outside its parent's key range")
    count = len(keys)
    bounds = [lo, *keys, hi]
    for n, child in enumerate(links):
        if child is not None:
            count += _validate(ns, child, ns.node(child, height - 1), bounds[n], bounds[n + 1])
    return count

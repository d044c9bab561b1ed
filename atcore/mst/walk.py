"""Reading a whole MST: in-order walks, key ranges, node order for CARs, full validation.

spec-repository.md: "MST Structure" (canonical layout) and "CAR File Serialization" (pre-order).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator

from atcore.blockstore import BlockStore
from atcore.cid import CID
from atcore.errors import InvalidMst
from atcore.mst.node import MAX_KEY_LENGTH, NodeData
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
    node, height = ns.load_root(root)
    items = _range(ns, node, height, lo, hi, reverse)
    for count, (key, value) in enumerate(items):
        if limit is not None and count >= limit:
            return
        yield key.decode(), value


def _bound(text: str | None) -> bytes | None:
    # Bounds need not be keys themselves (a collection prefix like "app.bsky.feed.post/").
    if text is None:
        return None
    raw = text.encode()
    if len(raw) > MAX_KEY_LENGTH:
        raise InvalidMst(f"range bound longer than {MAX_KEY_LENGTH} bytes")
    return raw


def _range(
    ns: NodeStore, node: NodeData, height: int, lo: bytes | None, hi: bytes | None, rev: bool
) -> Iterator[tuple[bytes, CID]]:
    entries = node.entries
    # Entries strictly inside the bounds are entries[first:last]; the gaps that can hold keys
    # in range are the one before `first` through the one after entry last-1.
    first = 0 if lo is None else bisect_left(entries, (lo,))
    if lo is not None and first < len(entries) and entries[first][0] == lo:
        first += 1
    last = len(entries) if hi is None else bisect_left(entries, (hi,))
    slots: list[tuple[bytes, CID] | CID | None] = [
        node.left if first == 0 else entries[first - 1][2]
    ]
    for key, value, right in entries[first:last]:
        slots.append((key, value))
        slots.append(right)
    if rev:
        slots.reverse()
    for slot in slots:
        if isinstance(slot, tuple):
            yield slot
        elif slot is not None:
            yield from _range(ns, ns.load(slot, height - 1), height - 1, lo, hi, rev)


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
    node, height = ns.load_root(root)
    yield from _car_order(ns, root, node, height)


def _car_order(ns: NodeStore, cid: CID, node: NodeData, height: int) -> Iterator[tuple[CID, bool]]:
    yield cid, True
    if node.left is not None:
        yield from _car_order(ns, node.left, ns.load(node.left, height - 1), height - 1)
    for _, value, right in node.entries:
        yield value, False
        if right is not None:
            yield from _car_order(ns, right, ns.load(right, height - 1), height - 1)


def validate_tree(store: BlockStore, root: CID) -> int:
    """Check the whole tree's canonical layout; returns the number of keys.

    Per node (via NodeStore): strict schema, sorted same-height keys, height matching the
    position, no empty node below the root unless it links further down, no links at height
    0, no empty root with a subtree. Across nodes: every key inside its parent's key range.
    Raises InvalidMst naming the offending node.
    """
    ns = as_node_store(store)
    node, height = ns.load_root(root)
    return _validate(ns, root, node, height, None, None)


def _validate(
    ns: NodeStore,
    cid: CID,
    node: NodeData,
    height: int,
    lo: bytes | None,
    hi: bytes | None,
) -> int:
    entries = node.entries
    if entries and (
        (lo is not None and entries[0][0] <= lo) or (hi is not None and entries[-1][0] >= hi)
    ):
        raise InvalidMst(f"MST node {cid.encode()} holds keys outside its parent's key range")
    count = len(entries)
    bounds = [lo, *(e[0] for e in entries), hi]
    links = [node.left, *(e[2] for e in entries)]
    for n, link in enumerate(links):
        if link is not None:
            child = ns.load(link, height - 1)
            count += _validate(ns, link, child, height - 1, bounds[n], bounds[n + 1])
    return count

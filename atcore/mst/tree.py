"""Immutable MST operations: root CID in, new root CID out (spec-repository.md, "MST Structure").

Every node created is written to the store. Heights come from the position in the tree: a
child is always exactly one level below its parent (empty intermediate nodes fill the gaps), so
only the root's height is ever computed from its keys.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable

from atcore.blockstore import BlockStore, OverlayBlockStore
from atcore.cid import CID
from atcore.errors import InvalidMst
from atcore.mst.node import EMPTY_NODE, Entry, NodeData, check_key, decode_node, key_height
from atcore.mst.store import NodeStore, as_node_store

__all__ = ["EMPTY_ROOT", "build", "get", "put", "delete", "apply", "empty_root"]

EMPTY_ROOT = CID.decode("bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm")


def empty_root(store: BlockStore) -> CID:
    """Store the empty tree's single node and return its CID (EMPTY_ROOT)."""
    return as_node_store(store).save(EMPTY_NODE, 0)


def get(store: BlockStore, root: CID, key: str) -> CID | None:
    """The value stored under `key`, or None."""
    ns = as_node_store(store)
    raw = check_key(key)
    node, height = ns.load_root(root)
    while True:
        entries = node.entries
        i = bisect_left(entries, (raw,))
        if i < len(entries) and entries[i][0] == raw:
            return entries[i][1]
        gap = node.left if i == 0 else entries[i - 1][2]
        if gap is None:
            return None
        height -= 1
        node = ns.load(gap, height)


def put(store: BlockStore, root: CID, key: str, value: CID) -> CID:
    """Insert or update `key`; returns the new root."""
    ns = as_node_store(store)
    return _put_root(ns, root, check_key(key), value)


def delete(store: BlockStore, root: CID, key: str) -> CID:
    """Remove `key`; raises KeyError when it is absent."""
    ns = as_node_store(store)
    return _delete_root(ns, root, check_key(key))


def apply(store: BlockStore, root: CID, writes: Iterable[tuple[str, CID | None]]) -> CID:
    """Apply a batch of writes (value None = delete) in order; returns the new root.

    Intermediate roots are staged in memory; only nodes reachable from the final root are
    written to `store`, so a batch leaves no orphan blocks behind.
    """
    ns = as_node_store(store)
    overlay = OverlayBlockStore(ns.blocks)
    staged = NodeStore(overlay, ns.cache_size, parent=ns)
    for key, value in writes:
        raw = check_key(key)
        root = (
            _delete_root(staged, root, raw)
            if value is None
            else _put_root(staged, root, raw, value)
        )
    pending = [root]
    while pending:
        cid = pending.pop()
        if not overlay.new.has(cid):
            continue
        ns.put(cid, overlay.new.get(cid))
        node = decode_node(overlay.new.get(cid))
        pending.extend(link for link in _links(node) if link is not None)
    return root


def build(store: BlockStore, items: Iterable[tuple[str, CID]]) -> CID:
    """Build a whole tree from (key, value) pairs in any order, bottom-up in one pass."""
    ns = as_node_store(store)
    pairs = sorted((check_key(k), v) for k, v in items)
    if not pairs:
        return ns.save(EMPTY_NODE, 0)
    for a, b in zip(pairs, pairs[1:], strict=False):
        if a[0] == b[0]:
            raise InvalidMst(f"duplicate MST key: {a[0]!r}")
    heights = [key_height(k) for k, _ in pairs]
    positions: dict[int, list[int]] = {}
    for i, h in enumerate(heights):
        positions.setdefault(h, []).append(i)

    def subtree(lo: int, hi: int, height: int) -> CID | None:
        # The node at `height` holding pairs[lo:hi]: its own keys are those of this height.
        if lo == hi:
            return None
        at = positions.get(height, [])
        own = at[bisect_left(at, lo) : bisect_left(at, hi)]
        if height == 0:
            return ns.save(NodeData(None, tuple((k, v, None) for k, v in pairs[lo:hi])), 0)
        below = height - 1
        left = subtree(lo, own[0] if own else hi, below)
        entries = []
        for n, i in enumerate(own):
            end = own[n + 1] if n + 1 < len(own) else hi
            key, value = pairs[i]
            entries.append((key, value, subtree(i + 1, end, below)))
        return ns.save(NodeData(left, tuple(entries)), height)

    root = subtree(0, len(pairs), max(heights))
    assert root is not None
    return root


def _links(node: NodeData) -> list[CID | None]:
    return [node.left, *(e[2] for e in node.entries)]


def _gap(node: NodeData, i: int) -> CID | None:
    """The subtree link just before entry i (the left link for i == 0)."""
    return node.left if i == 0 else node.entries[i - 1][2]


def _with_gap(node: NodeData, i: int, link: CID | None) -> NodeData:
    return node.with_left(link) if i == 0 else node.with_right(i - 1, link)


def _save_or_none(ns: NodeStore, node: NodeData, height: int) -> CID | None:
    if not node.entries and node.left is None:
        return None
    return ns.save(node, height)


def _wrap(ns: NodeStore, link: CID | None, height: int, target: int) -> CID | None:
    """Lift a subtree at `height` to `target` through empty intermediate nodes."""
    while link is not None and height < target:
        height += 1
        link = ns.save(NodeData(link, ()), height)
    return link


def _put_root(ns: NodeStore, root: CID, key: bytes, value: CID) -> CID:
    node, height = ns.load_root(root)
    kh = key_height(key)
    if not node.entries:
        return ns.save(NodeData(None, ((key, value, None),)), kh)
    if kh > height:
        lo, hi = _split(ns, root, height, key)
        lo, hi = _wrap(ns, lo, height, kh - 1), _wrap(ns, hi, height, kh - 1)
        return ns.save(NodeData(lo, ((key, value, hi),)), kh)
    return _put(ns, root, height, key, kh, value)


def _put(ns: NodeStore, cid: CID, height: int, key: bytes, kh: int, value: CID) -> CID:
    node = ns.load(cid, height)
    entries = node.entries
    i = bisect_left(entries, (key,))
    if height == kh:
        if i < len(entries) and entries[i][0] == key:
            if entries[i][1] == value:
                return cid
            new: Entry = (key, value, entries[i][2])
            return ns.save(node.splice(i, i + 1, (new,)), height)
        lo, hi = _split(ns, _gap(node, i), height - 1, key)
        return ns.save(_with_gap(node, i, lo).splice(i, i, ((key, value, hi),)), height)
    gap = _gap(node, i)
    if gap is None:
        sub = _wrap(ns, ns.save(NodeData(None, ((key, value, None),)), kh), kh, height - 1)
    else:
        sub = _put(ns, gap, height - 1, key, kh, value)
    if sub is gap:  # an update to the same value hands back the very same CID object
        return cid
    return ns.save(_with_gap(node, i, sub), height)


def _split(ns: NodeStore, cid: CID | None, height: int, key: bytes) -> tuple[CID | None, ...]:
    """Split the subtree at `height` into the parts with keys below and above `key`."""
    if cid is None:
        return None, None
    node = ns.load(cid, height)
    entries = node.entries
    i = bisect_left(entries, (key,))
    gap = _gap(node, i)
    if gap is None:
        if i == 0:
            return None, cid
        if i == len(entries):
            return cid, None
    lo, hi = _split(ns, gap, height - 1, key)
    low = _with_gap(node.splice(i, len(entries)), i, lo)
    high = node.splice(0, i).with_left(hi)
    return _save_or_none(ns, low, height), _save_or_none(ns, high, height)


def _delete_root(ns: NodeStore, root: CID, key: bytes) -> CID:
    node, height = ns.load_root(root)
    kh = key_height(key)
    if kh > height or not node.entries:
        raise KeyError(f"key not in MST: {key.decode()}")
    if kh == height and len(node.entries) == 1 and node.entries[0][0] == key:
        # The root loses its last key: the merged children become the root, minus any empty
        # levels on top, which are never stored.
        top = _merge_top(ns, node.left, node.entries[0][2], height - 1)
        return ns.save(EMPTY_NODE, 0) if top is None else top
    new = _delete(ns, root, height, key, kh)
    assert new is not None
    return new


def _merge_top(ns: NodeStore, a: CID | None, b: CID | None, height: int) -> CID | None:
    while a is not None or b is not None:
        na = ns.load(a, height) if a is not None else EMPTY_NODE
        nb = ns.load(b, height) if b is not None else EMPTY_NODE
        if na.entries or nb.entries:
            return _merge(ns, a, b, height)
        a, b, height = na.left, nb.left, height - 1
    return None


def _delete(ns: NodeStore, cid: CID, height: int, key: bytes, kh: int) -> CID | None:
    node = ns.load(cid, height)
    entries = node.entries
    i = bisect_left(entries, (key,))
    if height == kh:
        if i == len(entries) or entries[i][0] != key:
            raise KeyError(f"key not in MST: {key.decode()}")
        merged = _merge(ns, _gap(node, i), entries[i][2], height - 1)
        return _save_or_none(ns, _with_gap(node.splice(i, i + 1), i, merged), height)
    gap = _gap(node, i)
    if gap is None:
        raise KeyError(f"key not in MST: {key.decode()}")
    sub = _delete(ns, gap, height - 1, key, kh)
    return _save_or_none(ns, _with_gap(node, i, sub), height)


def _merge(ns: NodeStore, a: CID | None, b: CID | None, height: int) -> CID | None:
    """Join two adjacent subtrees at `height` (all keys of `a` below all keys of `b`)."""
    if a is None:
        return b
    if b is None:
        return a
    na, nb = ns.load(a, height), ns.load(b, height)
    last = len(na.entries)
    mid = _merge(ns, _gap(na, last), nb.left, height - 1)
    return ns.save(_with_gap(na, last, mid).concat(nb), height)

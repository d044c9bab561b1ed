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
from atcore.mst.node import check_key, key_height
from atcore.mst.raw import Node, concat, leaf, make, splice, with_gap
from atcore.mst.store import NodeStore, as_node_store

__all__ = ["EMPTY_ROOT", "build", "get", "put", "delete", "apply", "root_after", "empty_root"]

EMPTY_ROOT = CID.decode("bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm")

_EMPTY: Node = make(0, ((), (), (None,)))

Link = bytes | None
"""A subtree link in working form: the CID's bytes (atcore.mst.raw)."""


def empty_root(store: BlockStore) -> CID:
    """Store the empty tree's single node and return its CID (EMPTY_ROOT)."""
    return CID(as_node_store(store).store(_EMPTY))


def get(store: BlockStore, root: CID, key: str) -> CID | None:
    """The value stored under `key`, or None."""
    ns = as_node_store(store)
    raw = check_key(key)
    node = ns.root(root.cid_bytes)
    while True:
        keys = node[2]
        i = bisect_left(keys, raw)
        if i < len(keys) and keys[i] == raw:
            return CID(node[3][i])
        link = node[4][i]
        if link is None:
            return None
        node = ns.node(link, node[0] - 1)


def put(store: BlockStore, root: CID, key: str, value: CID) -> CID:
    """Insert or update `key`; returns the new root."""
    ns = as_node_store(store)
    return CID(_put_root(ns, root.cid_bytes, check_key(key), value.cid_bytes))


def delete(store: BlockStore, root: CID, key: str) -> CID:
    """Remove `key`; raises KeyError when it is absent."""
    ns = as_node_store(store)
    return CID(_delete_root(ns, root.cid_bytes, check_key(key)))


def apply(store: BlockStore, root: CID, writes: Iterable[tuple[str, CID | None]]) -> CID:
    """Apply a batch of writes (value None = delete) in order; returns the new root.

    Intermediate roots are staged in memory; only nodes reachable from the final root are
    written to `store`, so a batch leaves no orphan blocks behind.
    """
    ns = as_node_store(store)
    link, staged, overlay = _stage(ns, root, writes)
    # Store what the final tree reaches of the staged nodes, and keep them decoded.
    new = overlay.new
    pending: list[tuple[bytes, int | None]] = [(link, None)]
    while pending:
        at, height = pending.pop()
        cid = CID(at)
        if new.has(cid):
            node = staged.root(at) if height is None else staged.node(at, height)
            ns.put(cid, new.get(cid))
            ns.remember(at, node)
            pending.extend((x, node[0] - 1) for x in node[4] if x is not None)
    return CID(link)


def root_after(store: BlockStore, root: CID, writes: Iterable[tuple[str, CID | None]]) -> CID:
    """The root `apply` would return, without writing anything to `store`: for checking a
    claimed root (operation inversion), where the new nodes are never read again."""
    return CID(_stage(as_node_store(store), root, writes)[0])


def _stage(
    ns: NodeStore, root: CID, writes: Iterable[tuple[str, CID | None]]
) -> tuple[bytes, NodeStore, OverlayBlockStore]:
    """Apply `writes` on a staging layer over `ns`; returns the new root's link, the staging
    store and its overlay (which holds every node made, reachable or not)."""
    overlay = OverlayBlockStore(ns.blocks)
    staged = NodeStore(overlay, ns.cache_size, parent=ns)
    link = root.cid_bytes
    for key, value in writes:
        raw = check_key(key)
        link = (
            _delete_root(staged, link, raw)
            if value is None
            else _put_root(staged, link, raw, value.cid_bytes)
        )
    return link, staged, overlay


def build(store: BlockStore, items: Iterable[tuple[str, CID]]) -> CID:
    """Build a whole tree from (key, value) pairs in any order, bottom-up in one pass."""
    ns = as_node_store(store)
    pairs = sorted((check_key(k), v.cid_bytes) for k, v in items)
    if not pairs:
        return CID(ns.store(_EMPTY))
    for a, b in zip(pairs, pairs[1:], strict=False):
        if a[0] == b[0]:
            raise InvalidMst(f"duplicate MST key: {a[0]!r}")
    heights = [key_height(k) for k, _ in pairs]
    positions: dict[int, list[int]] = {}
    for i, h in enumerate(heights):
        positions.setdefault(h, []).append(i)

    def subtree(lo: int, hi: int, height: int) -> Link:
        # The node at `height` holding pairs[lo:hi]: its own keys are those of this height.
        if lo == hi:
            return None
        if height == 0:
            keys = tuple(k for k, _ in pairs[lo:hi])
            vals = tuple(v for _, v in pairs[lo:hi])
            return ns.store(make(0, (keys, vals, (None,) * (len(keys) + 1))))
        at = positions.get(height, [])
        own = at[bisect_left(at, lo) : bisect_left(at, hi)]
        below = height - 1
        left = subtree(lo, own[0] if own else hi, below)
        links = [left]
        for n, i in enumerate(own):
            end = own[n + 1] if n + 1 < len(own) else hi
            links.append(subtree(i + 1, end, below))
        keys = tuple(pairs[i][0] for i in own)
        vals = tuple(pairs[i][1] for i in own)
        return ns.store(make(height, (keys, vals, tuple(links))))

    root = subtree(0, len(pairs), max(heights))
    assert root is not None
    return CID(root)


def _save_or_none(ns: NodeStore, node: Node) -> Link:
    if not node[2] and node[4][0] is None:
        return None
    return ns.store(node)


def _wrap(ns: NodeStore, link: Link, height: int, target: int) -> Link:
    """Lift a subtree at `height` to `target` through empty intermediate nodes."""
    while link is not None and height < target:
        height += 1
        link = ns.store(make(height, ((), (), (link,))))
    return link


def _put_root(ns: NodeStore, root: bytes, key: bytes, value: bytes) -> bytes:
    node = ns.root(root)
    height = node[0]
    kh = key_height(key)
    if not node[2]:
        return ns.store(leaf(kh, key, value))
    if kh > height:
        lo, hi = _split(ns, root, height, key)
        lo, hi = _wrap(ns, lo, height, kh - 1), _wrap(ns, hi, height, kh - 1)
        return ns.store(make(kh, ((key,), (value,), (lo, hi))))
    # Down to the key's level, remembering the path; then each node on it gets the new link
    # to its rebuilt child (the hot path of every put: one link swapped per level).
    path = []
    link = root
    new: Link
    while height > kh:
        i = bisect_left(node[2], key)
        below = node[4][i]
        path.append((link, node, i))
        height -= 1
        if below is None:
            new = _wrap(ns, ns.store(leaf(kh, key, value)), kh, height)
            break
        link, node = below, ns.node(below, height)
    else:
        new = _put_here(ns, link, node, key, value)
        if new == link:  # an update to the same value
            return root
    for old, parent, i in reversed(path):
        new = ns.store(with_gap(parent, i, new), old)
    assert new is not None  # a put never empties a subtree
    return new


def _put_here(ns: NodeStore, link: bytes, node: Node, key: bytes, value: bytes) -> bytes:
    """Put into the node at the key's own height: update its entry, or split the subtree
    below where the key goes and insert it between the two halves."""
    keys = node[2]
    i = bisect_left(keys, key)
    if i < len(keys) and keys[i] == key:
        if node[3][i] == value:
            return link
        new = splice(node, i, i + 1, (key,), (value,), (node[4][i + 1],))
    else:
        lo, hi = _split(ns, node[4][i], node[0] - 1, key)
        new = splice(with_gap(node, i, lo), i, i, (key,), (value,), (hi,))
    return ns.store(new, link)


def _split(ns: NodeStore, link: Link, height: int, key: bytes) -> tuple[Link, Link]:
    """Split the subtree at `height` into the parts with keys below and above `key`."""
    if link is None:
        return None, None
    node = ns.node(link, height)
    n = len(node[2])
    i = bisect_left(node[2], key)
    below = node[4][i]
    if below is None:
        if i == 0:
            return None, link
        if i == n:
            return link, None
    lo, hi = _split(ns, below, height - 1, key)
    low = with_gap(splice(node, i, n), i, lo)
    high = with_gap(splice(node, 0, i), 0, hi)
    ns.retire(link)
    return _save_or_none(ns, low), _save_or_none(ns, high)


def _delete_root(ns: NodeStore, root: bytes, key: bytes) -> bytes:
    node = ns.root(root)
    height = node[0]
    kh = key_height(key)
    keys = node[2]
    if kh > height or not keys:
        raise KeyError(f"key not in MST: {key.decode()}")
    if kh == height and len(keys) == 1 and keys[0] == key:
        # The root loses its last key: the merged children become the root, minus any empty
        # levels on top, which are never stored.
        top = _merge_top(ns, node[4][0], node[4][1], height - 1)
        return ns.store(_EMPTY) if top is None else top
    new = _delete(ns, root, height, key, kh)
    assert new is not None
    return new


def _merge_top(ns: NodeStore, a: Link, b: Link, height: int) -> Link:
    while a is not None or b is not None:
        na = ns.node(a, height) if a is not None else _EMPTY
        nb = ns.node(b, height) if b is not None else _EMPTY
        if na[2] or nb[2]:
            return _merge(ns, a, b, height)
        a, b, height = na[4][0], nb[4][0], height - 1
    return None


def _delete(ns: NodeStore, link: bytes, height: int, key: bytes, kh: int) -> Link:
    node = ns.node(link, height)
    keys = node[2]
    i = bisect_left(keys, key)
    if height == kh:
        if i == len(keys) or keys[i] != key:
            raise KeyError(f"key not in MST: {key.decode()}")
        merged = _merge(ns, node[4][i], node[4][i + 1], height - 1)
        new = with_gap(splice(node, i, i + 1), i, merged)
    else:
        below = node[4][i]
        if below is None:
            raise KeyError(f"key not in MST: {key.decode()}")
        new = with_gap(node, i, _delete(ns, below, height - 1, key, kh))
    ns.retire(link)
    return _save_or_none(ns, new)


def _merge(ns: NodeStore, a: Link, b: Link, height: int) -> Link:
    """Join two adjacent subtrees at `height` (all keys of `a` below all keys of `b`)."""
    if a is None:
        return b
    if b is None:
        return a
    na, nb = ns.node(a, height), ns.node(b, height)
    last = len(na[2])
    mid = _merge(ns, na[4][last], nb[4][0], height - 1)
    ns.retire(a)
    ns.retire(b)
    return ns.store(concat(with_gap(na, last, mid), nb))

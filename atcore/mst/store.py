"""MST nodes over a BlockStore: decode once, cache by CID, check heights (spec-repository.md)."""

from __future__ import annotations

import hashlib
from collections import OrderedDict

from atcore.blockstore import BlockStore
from atcore.cid import CID
from atcore.errors import InvalidMst
from atcore.mst.node import NodeData, decode_node, encode_node, key_height

__all__ = ["NodeStore", "as_node_store"]

_DAG_CBOR_SHA256 = b"\x01\x71\x12\x20"


class NodeStore:
    """A BlockStore that also keeps a bounded FIFO cache of decoded, height-checked MST nodes.

    The cache only ever holds nodes whose blocks were read from or written to `blocks`, so a
    cache hit never hides a block the store lacks (proof checks rely on MissingBlock).
    Each cached node remembers the height it was checked at: a node is only valid at one height.
    """

    def __init__(
        self, blocks: BlockStore, cache_size: int = 20_000, parent: NodeStore | None = None
    ) -> None:
        self.blocks = blocks
        # A staging store reads through to its parent's blocks, so the parent's cache is valid.
        self.parent = parent
        self.cache_size = cache_size
        # Keyed by the CID's bytes: their hash is computed once and cached by CPython.
        self._cache: OrderedDict[bytes, tuple[NodeData, int]] = OrderedDict()

    def get(self, cid: CID) -> bytes:
        return self.blocks.get(cid)

    def put(self, cid: CID, data: bytes) -> None:
        self.blocks.put(cid, data)

    def has(self, cid: CID) -> bool:
        return self.blocks.has(cid)

    def _remember(self, cid: CID, node: NodeData, height: int) -> None:
        # FIFO eviction: the nodes a write touches are re-created by it, so recency tracking
        # (move_to_end on every hit) would cost more than the rare re-decode it saves. An
        # OrderedDict, because evicting from the front of a plain dict rescans deleted slots.
        cache = self._cache
        cache[cid.cid_bytes] = (node, height)
        if len(cache) > self.cache_size:
            cache.popitem(last=False)

    def _lookup(self, cid: CID) -> tuple[NodeData, int] | None:
        hit = self._cache.get(cid.cid_bytes)
        if hit is None and self.parent is not None:
            return self.parent._lookup(cid)
        return hit

    def load(self, cid: CID, height: int) -> NodeData:
        """The non-root node `cid`, which its parent places at `height`."""
        hit = self._cache.get(cid.cid_bytes) or self._lookup(cid)
        if hit is not None:
            if hit[1] != height:
                raise InvalidMst(f"MST node {cid.encode()} is at height {height}, not {hit[1]}")
            return hit[0]
        node = decode_node(self.blocks.get(cid))
        if node.entries:
            actual = key_height(node.entries[0][0])
            if actual != height:
                raise InvalidMst(
                    f"MST node {cid.encode()} holds height-{actual} keys at height {height}"
                )
        elif node.left is None:
            raise InvalidMst(f"MST node {cid.encode()} is an empty node below the root")
        _check_leaf_level(cid, node, height)
        self._remember(cid, node, height)
        return node

    def load_root(self, cid: CID) -> tuple[NodeData, int]:
        """The root node `cid` and its height (0 for the empty tree)."""
        hit = self._lookup(cid)
        if hit is not None:
            node, height = hit
            if not node.entries and node.left is not None:
                raise InvalidMst(f"MST root {cid.encode()} is an empty node with a subtree")
            return hit
        node = decode_node(self.blocks.get(cid))
        if not node.entries:
            if node.left is not None:
                raise InvalidMst(f"MST root {cid.encode()} is an empty node with a subtree")
            height = 0
        else:
            height = key_height(node.entries[0][0])
        _check_leaf_level(cid, node, height)
        self._remember(cid, node, height)
        return node, height

    def save(self, node: NodeData, height: int) -> CID:
        """Encode, hash and store a node; returns its CID."""
        data = encode_node(node)
        cid = CID(_DAG_CBOR_SHA256 + hashlib.sha256(data).digest())
        self.blocks.put(cid, data)
        self._remember(cid, node, height)
        return cid


def _check_leaf_level(cid: CID, node: NodeData, height: int) -> None:
    if height == 0 and (node.left is not None or any(e[2] is not None for e in node.entries)):
        raise InvalidMst(f"MST node {cid.encode()} at height 0 links to a subtree")


def as_node_store(store: BlockStore) -> NodeStore:
    """`store` itself when it is a NodeStore (keeping its cache), else a fresh wrapper."""
    return store if isinstance(store, NodeStore) else NodeStore(store)

"""MST nodes over a BlockStore: decode once, cache by CID, check heights (spec-repository.md)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from hashlib import sha256

from atcore.blockstore import BlockStore
from atcore.cid import CID
from atcore.errors import InvalidMst
from atcore.mst import raw
from atcore.mst.node import NodeData, decode_fields, node_data, node_fields
from atcore.mst.raw import Node

__all__ = ["NodeStore", "as_node_store"]

_DAG_CBOR_SHA256 = b"\x01\x71\x12\x20"


class NodeStore:
    """A BlockStore that also keeps a bounded cache of decoded, height-checked MST nodes.

    The cache only ever holds nodes whose blocks were read from or written to `blocks`, so a
    cache hit never hides a block the store lacks (proof checks rely on MissingBlock).
    Each cached node carries the height it was checked at: a node is only valid at one height.
    Nodes are kept in working form (atcore.mst.raw), keyed by their CID's bytes.
    """

    def __init__(
        self, blocks: BlockStore, cache_size: int = 50_000, parent: NodeStore | None = None
    ) -> None:
        self.blocks = blocks
        # A staging store reads through to its parent's blocks, so the parent's cache is valid.
        self.parent = parent
        self.cache_size = cache_size
        # Insertion order is eviction order; an OrderedDict, because evicting from the front
        # of a plain dict rescans its deleted slots.
        self._cache: OrderedDict[bytes, Node] = OrderedDict()
        # Stores that take binary CIDs (put_raw) spare the hot path a CID object per node.
        put_raw = getattr(blocks, "put_raw", None)
        self._put_block: Callable[[bytes, bytes], None] = put_raw or self._put_cid
        get_raw = getattr(blocks, "get_raw", None)
        self._get_block: Callable[[bytes], bytes] = get_raw or self._get_cid

    def _put_cid(self, link: bytes, data: bytes) -> None:
        self.blocks.put(CID(link), data)

    def _get_cid(self, link: bytes) -> bytes:
        return self.blocks.get(CID(link))

    def get(self, cid: CID) -> bytes:
        return self.blocks.get(cid)

    def put(self, cid: CID, data: bytes) -> None:
        self.blocks.put(cid, data)

    def has(self, cid: CID) -> bool:
        return self.blocks.has(cid)

    def _cached(self, link: bytes) -> Node | None:
        hit = self._cache.get(link)
        if hit is None and self.parent is not None:
            return self.parent._cached(link)
        return hit

    def _decode(self, link: bytes, height: int | None) -> Node:
        data = self._get_block(link)
        fields, actual, offsets = decode_fields(data)
        links = fields[2]
        if actual is not None:
            if height is not None and actual != height:
                raise InvalidMst(
                    f"MST node {_show(link)} holds height-{actual} keys at height {height}"
                )
        elif links[0] is not None and height is None:
            raise InvalidMst(f"MST root {_show(link)} is an empty node with a subtree")
        elif links[0] is None and height is not None:
            raise InvalidMst(f"MST node {_show(link)} is an empty node below the root")
        else:
            actual = 0 if height is None else height
        if actual == 0 and links.count(None) != len(links):
            raise InvalidMst(f"MST node {_show(link)} at height 0 links to a subtree")
        node = raw.from_block(actual, data, fields, offsets)
        self.remember(link, node)
        return node

    def node(self, link: bytes, height: int) -> Node:
        """The non-root node at `link`, which its parent places at `height`."""
        node = self._cache.get(link) or self._cached(link) or self._decode(link, height)
        if node[0] != height:
            raise InvalidMst(f"MST node {_show(link)} is at height {height}, not {node[0]}")
        return node

    def root(self, link: bytes) -> Node:
        """The root node at `link`; its height is 0 for the empty tree."""
        node = self._cached(link)
        if node is None:
            return self._decode(link, None)
        if not node[2] and node[4][0] is not None:
            raise InvalidMst(f"MST root {_show(link)} is an empty node with a subtree")
        return node

    def store(self, node: Node, replaces: bytes | None = None) -> bytes:
        """Encode, hash and store a node; returns its CID's bytes.

        `replaces` names the node this one supersedes in an edit: the tree being edited no
        longer reaches it, so it is the first to go when the cache is full. Random writes to
        a large tree keep the whole live tree cached this way, where plain FIFO order evicts
        live nodes as fast as it evicts dead ones.
        """
        data = node[1]
        link = _DAG_CBOR_SHA256 + sha256(data).digest()
        self._put_block(link, data)
        cache = self._cache
        if replaces is not None:
            self.retire(replaces)
        cache[link] = node
        if len(cache) > self.cache_size:
            cache.popitem(last=False)
        return link

    def retire(self, link: bytes) -> None:
        """Make an edited-away node the first to go (see `store`)."""
        # A membership test, not a caught KeyError: in a staging store most retired nodes
        # live in the parent's cache, and raising costs more than the move itself.
        if link in self._cache:
            self._cache.move_to_end(link, last=False)
        elif self.parent is not None:
            self.parent.retire(link)

    def remember(self, link: bytes, node: Node) -> None:
        """Cache a node whose block `blocks` holds."""
        cache = self._cache
        cache[link] = node
        if len(cache) > self.cache_size:
            cache.popitem(last=False)

    def load(self, cid: CID, height: int) -> NodeData:
        """The non-root node `cid` at `height`, links as CID objects."""
        return node_data(self.node(cid.cid_bytes, height)[2:5])

    def load_root(self, cid: CID) -> tuple[NodeData, int]:
        """The root node `cid` and its height (0 for the empty tree), links as CID objects."""
        node = self.root(cid.cid_bytes)
        return node_data(node[2:5]), node[0]

    def save(self, node: NodeData, height: int) -> CID:
        """Encode, hash and store a node placed at `height`; returns its CID."""
        return CID(self.store(raw.make(height, node_fields(node))))


def _show(link: bytes) -> str:
    return CID(link).encode()


def as_node_store(store: BlockStore) -> NodeStore:
    """`store` itself when it is a NodeStore (keeping its cache), else a fresh wrapper."""
    return store if isinstance(store, NodeStore) else NodeStore(store)

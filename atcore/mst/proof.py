"""MST proofs: key paths and the inductive proof a #commit carries (spec-repository.md, "Repository
Diffs"; spec-sync.md and blog-relay-updates-sync-v1-1.md, sync 1.1 operation inversion)."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable

from atcore.blockstore import BlockStore
from atcore.cid import CID
from atcore.mst.diff import RecordOp
from atcore.mst.node import check_key
from atcore.mst.store import NodeStore, as_node_store

__all__ = ["proof_nodes", "covering_proof", "inductive_proof_nodes"]


def proof_nodes(store: BlockStore, root: CID, key: str) -> set[CID]:
    """The nodes from the root down to the node holding `key` (inclusion proof) or to the
    empty link where it would be (exclusion proof)."""
    return _path(as_node_store(store), root, check_key(key), spines=False)


def covering_proof(store: BlockStore, root: CID, keys: Iterable[str]) -> set[CID]:
    """The union of proof_nodes over `keys`: proves each key's value or absence."""
    ns = as_node_store(store)
    return set().union(*(_path(ns, root, check_key(k), spines=False) for k in keys))


def inductive_proof_nodes(store: BlockStore, new_root: CID, ops: Iterable[RecordOp]) -> set[CID]:
    """The existing nodes of the new tree a relay needs to invert `ops` (besides the blocks).

    For every op key: its path in the new tree; and for keys present in the new tree (creates
    and updates), the paths to both neighbouring keys, because deleting a key merges the
    subtrees on either side of it along their facing edges. The neighbour of an absent key
    sits on the key's own path already. This is the `blocksInProof` set of the official
    commit-proof fixtures.
    """
    ns = as_node_store(store)
    return set().union(*(_path(ns, new_root, check_key(op.key), spines=True) for op in ops))


def _path(ns: NodeStore, root: CID, key: bytes, spines: bool) -> set[CID]:
    found: set[bytes] = {root.cid_bytes}
    node = ns.root(root.cid_bytes)
    while True:
        height, _, keys, _, links, _ = node
        i = bisect_left(keys, key)
        if i < len(keys) and keys[i] == key:
            if spines:
                # The predecessor is the last key of the subtree left of `key`, the successor
                # the first key of the subtree right of it.
                _edge(ns, links[i], height - 1, -1, found)
                _edge(ns, links[i + 1], height - 1, 0, found)
            break
        link = links[i]
        if link is None:
            break
        node = ns.node(link, height - 1)
        found.add(link)
    return {CID(link) for link in found}


def _edge(ns: NodeStore, link: bytes | None, height: int, side: int, found: set[bytes]) -> None:
    """Follow a subtree's rightmost (side -1) or leftmost (side 0) edge to the bottom."""
    while link is not None:
        found.add(link)
        link = ns.node(link, height)[4][side]
        height -= 1

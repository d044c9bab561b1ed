"""MST proofs: key paths and the inductive proof a #commit carries (spec-repository.md, "Repository
Diffs"; spec-sync.md and blog-relay-updates-sync-v1-1.md, sync 1.1 operation inversion)."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable

from atcore.blockstore import BlockStore
from atcore.cid import CID
from atcore.mst.diff import RecordOp
from atcore.mst.node import check_key, key_height
from atcore.mst.store import NodeStore, as_node_store

__all__ = ["proof_nodes", "covering_proof", "inductive_proof_nodes"]


def proof_nodes(store: BlockStore, root: CID, key: str) -> set[CID]:
    """The nodes from the root down to the node holding `key` (inclusion proof), or down to
    where its absence shows (exclusion proof): the node of the key's own height, an empty
    link above it, or the root alone when the root is lower than the key.

    A verifier that knows key heights needs no more. The official client's (@atproto/repo)
    looks a key up to the empty link, so the PDS's getRecord proofs hold what tree.get reads.
    """
    return _path(as_node_store(store), root, check_key(key))


def covering_proof(store: BlockStore, root: CID, keys: Iterable[str]) -> set[CID]:
    """The union of proof_nodes over `keys`: proves each key's value or absence."""
    ns = as_node_store(store)
    return set().union(*(_path(ns, root, check_key(k)) for k in keys))


def inductive_proof_nodes(store: BlockStore, new_root: CID, ops: Iterable[RecordOp]) -> set[CID]:
    """The nodes of the new tree a relay needs to check `ops` and invert them (sync 1.1).

    Every op's key gets its proof (proof_nodes). A create also gets the inclusion proofs of its
    two neighbouring keys in the new tree: undoing it merges the subtrees either side of it
    along their facing edges, and sync 1.1 has the proof show those edges down to the
    neighbours (the official commit-proof fixtures' blocksInProof hold exactly these paths,
    even where a merge would stop sooner because one side ends). A delete gets its key's whole
    search path down to the empty link: undoing it inserts the key, which splits every node on
    that path below its height. An update needs only its key's path. The exhaustive test
    checks that inverting the ops in any order reads nothing outside this set.
    """
    ns = as_node_store(store)
    found: set[bytes] = set()
    for op in ops:
        key = check_key(op.key)
        if op.new is None:
            found |= _search(ns, new_root, key, 0)
        elif op.old is None:
            found |= _search(ns, new_root, key, key_height(key), neighbours=True)
        else:
            found |= _search(ns, new_root, key, key_height(key))
    return {CID(link) for link in found}


def _path(ns: NodeStore, root: CID, key: bytes) -> set[CID]:
    return {CID(link) for link in _search(ns, root, key, key_height(key))}


def _search(
    ns: NodeStore, root: CID, key: bytes, floor: int, neighbours: bool = False
) -> set[bytes]:
    """The links from the root down towards `key`, stopping at the key, at an empty link or
    at height `floor` (a key lives at its own height: at or below it, the key is here or
    nowhere). With `neighbours`, also the paths on to the keys either side of a found key:
    down the facing edges of the subtrees around it."""
    found: set[bytes] = {root.cid_bytes}
    node = ns.root(root.cid_bytes)
    while True:
        height, _, keys, _, links, _ = node
        i = bisect_left(keys, key)
        if i < len(keys) and keys[i] == key:
            if neighbours:
                _edge(ns, links[i], height - 1, -1, found)
                _edge(ns, links[i + 1], height - 1, 0, found)
            return found
        link = links[i]
        if link is None or height <= floor:
            return found
        node = ns.node(link, height - 1)
        found.add(link)


def _edge(ns: NodeStore, link: bytes | None, height: int, side: int, found: set[bytes]) -> None:
    """Follow a subtree's rightmost (side -1) or leftmost (side 0) edge to the bottom."""
    while link is not None:
        found.add(link)
        link = ns.node(link, height)[4][side]
        height -= 1

"""A repository as a whole: its head (signed commit or bare MST root), building, exporting.

Spec: spec-repository.md ("Repository Structure", "CAR File Serialization").
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from atcore import cbor
from atcore.blockstore import BlockStore
from atcore.cid import CID, cid_for_cbor
from atcore.commit import Commit, create_commit, decode_commit
from atcore.keys import PrivateKey
from atcore.mst import tree, walk
from atcore.mst.store import as_node_store
from atcore.syntax.did import Did
from atcore.syntax.tid import Tid


@dataclass(frozen=True)
class RepoHead:
    """Where a repository starts: the commit (None for a bare MST) and the MST root."""

    root: CID
    commit: Commit | None
    data: CID


def read_head(store: BlockStore, root: CID) -> RepoHead:
    """Classify `root` as a signed commit or a bare MST node; strict either way."""
    block = store.get(root)
    value = cbor.decode(block)
    if isinstance(value, dict) and "sig" in value:
        commit = decode_commit(block)
        return RepoHead(root, commit, commit.data)
    as_node_store(store).load_root(root)
    return RepoHead(root, None, root)


def build_repo(
    store: BlockStore,
    did: Did,
    key: PrivateKey,
    rev: Tid,
    records: Iterable[tuple[str, dict[str, Any]]],
) -> RepoHead:
    """Store every record and its MST, sign a commit over them; returns the new head."""
    items = []
    for path, record in records:
        block = cbor.encode(record)
        cid = cid_for_cbor(block)
        store.put(cid, block)
        items.append((path, cid))
    data = tree.build(store, items)
    commit, block, cid = create_commit(did, data, rev, key)
    store.put(cid, block)
    return RepoHead(cid, commit, data)


def export_blocks(store: BlockStore, head: RepoHead) -> Iterator[tuple[CID, bytes]]:
    """Every block of the repo in deterministic order: commit, then MST pre-order with records.

    This is the order `com.atproto.sync.getRepo` streams (commit block first).
    """
    if head.commit is not None:
        yield head.root, store.get(head.root)
    for cid, _ in walk.iter_car_order(store, head.data):
        yield cid, store.get(cid)

"""One signed commit inside an account's write transaction (spec-repository.md, spec-sync.md).

Runs entirely in the actor store's worker thread: read the head, check swaps, edit the MST,
sign, collect the `#commit` event's blocks (new blocks plus the nodes a consumer needs to invert
the ops, sync 1.1), and write blocks, records, root and outbox row in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass

from atcore.blockstore import OverlayBlockStore
from atcore.car import write_car
from atcore.cid import CID
from atcore.commit import create_commit
from atcore.frames import CommitEvent, RepoOp, SyncEvent, encode_frame
from atcore.keys import PrivateKey
from atcore.mst import tree
from atcore.mst.store import NodeStore
from atcore.syntax.did import Did
from atcore.syntax.tid import Tid, TidClock
from atcore.xrpc.errors import InvalidRequest
from pds.actor_store.store import Txn
from pds.repo_prepare import PreparedWrite, ValidationStatus

# Nodes decoded while inverting one commit's ops: a few per op, never a whole repo.
_PROOF_CACHE = 4096


@dataclass(frozen=True)
class WriteResult:
    action: str
    uri: str
    cid: CID | None
    validation: ValidationStatus | None


@dataclass(frozen=True)
class CommitResult:
    """A durable commit: its CID and rev, each write's outcome, and its firehose event."""

    cid: CID
    rev: str
    results: list[WriteResult]
    event: CommitEvent
    outbox_id: int
    since: str | None = None
    # Events stored in the outbox after the commit's own (the genesis `#sync`).
    more: tuple[SyncEvent, ...] = ()
    # Blobs no record references any more: their files go once the commit is durable.
    dropped_blobs: tuple[CID, ...] = ()


def genesis(txn: Txn, did: Did, key: PrivateKey, clock: TidClock, now: str) -> CommitResult:
    """The first commit of an empty repo, with its `#commit` and `#sync` outbox rows."""
    if txn.sql.root() is not None:
        raise InvalidRequest(f"the repo of {did} already exists")
    data = tree.empty_root(txn.nodes)
    rev = clock.next()
    commit, block, cid = create_commit(did, data, rev, key)
    new = {cid: block, **txn.staged.new}
    txn.sql.put_blocks(new.items(), rev)
    txn.sql.set_root(did, cid, rev, data)
    event = CommitEvent(0, did, cid, rev, None, write_car(cid, new.items()), (), now)
    txn.sql.add_outbox("commit", rev, encode_frame(event))
    sync = SyncEvent(0, did, write_car(cid, [(cid, block)]), rev, now)
    outbox_id = txn.sql.add_outbox("sync", rev, encode_frame(sync))
    return CommitResult(cid, rev, [], event, outbox_id, more=(sync,))


def commit_writes(
    txn: Txn,
    did: Did,
    key: PrivateKey,
    clock: TidClock,
    writes: list[PreparedWrite],
    swap_commit: CID | None,
    now: str,
    sequenced_upto: int,
) -> CommitResult | None:
    """Apply `writes` as one commit; None when every write was a no-op delete."""
    sql = txn.sql
    root = sql.root()
    if root is None:
        raise InvalidRequest(f"Could not find repo: {did}", "RepoNotFound")
    if swap_commit is not None and swap_commit != root.cid:
        raise InvalidRequest(f"Commit was at {root.cid.encode()}", "InvalidSwap")
    ops: list[RepoOp] = []
    results: list[WriteResult] = []
    records: dict[CID, bytes] = {}
    links: list[tuple[str, tuple[CID, ...]]] = []
    for w in writes:
        current = sql.record_cid(w.collection, w.rkey)
        if w.swap and current != w.swap_record:
            at = current.encode() if current is not None else "null"
            raise InvalidRequest(f"Record was at {at}", "InvalidSwap")
        uri = f"at://{did}/{w.path}"
        if w.action == "delete":
            if current is None:
                if w.if_exists:
                    continue
                raise InvalidRequest(f"Could not find record: {uri}", "RecordNotFound")
            ops.append(RepoOp("delete", w.path, None, current))
            results.append(WriteResult("delete", uri, None, None))
            continue
        assert w.cid is not None and w.block is not None
        if w.action == "create" and current is not None:
            raise InvalidRequest(f"Record already exists: {uri}")
        for blob in w.blobs:
            if sql.blob(blob) is None:
                raise InvalidRequest(f"Could not find blob: {blob.encode()}", "BlobNotFound")
        links.append((w.path, w.blobs))
        action = "create" if current is None else "update"
        ops.append(RepoOp(action, w.path, w.cid, current))
        records[w.cid] = w.block
        results.append(WriteResult(action, uri, w.cid, w.validation))
    if not ops:
        return None
    data = tree.apply(txn.nodes, root.data, [(op.path, op.cid) for op in ops])
    clock.observe(Tid(root.rev))
    rev = clock.next()
    commit, block, cid = create_commit(did, data, rev, key)
    new = {cid: block, **txn.staged.new, **records}
    proof = _inversion_nodes(txn, data, ops, root.data)
    event_blocks = {**new, **{c: sql.get(c) if c not in new else new[c] for c in proof}}
    event = CommitEvent(
        seq=0,
        repo=did,
        commit=cid,
        rev=rev,
        since=root.rev,
        blocks=write_car(cid, event_blocks.items()),
        ops=tuple(ops),
        time=now,
        prev_data=root.data,
    )
    sql.clear_outbox(sequenced_upto)
    sql.put_blocks(new.items(), rev)
    for op in ops:
        collection, _, rkey = op.path.partition("/")
        if op.cid is None:
            sql.delete_record(collection, rkey)
        else:
            sql.put_record(collection, rkey, op.cid, rev, now)
    sql.drop_unreferenced_records(op.prev for op in ops if op.prev is not None)
    unlinked = [blob for op in ops if op.prev is not None for blob in sql.unlink_blobs(op.path)]
    for path, blobs in links:
        sql.link_blobs(path, blobs)
    dropped = tuple(sql.drop_orphan_blobs(unlinked))
    sql.set_root(did, cid, rev, data)
    outbox_id = sql.add_outbox("commit", rev, encode_frame(event))
    return CommitResult(cid, rev, results, event, outbox_id, root.rev, dropped_blobs=dropped)


def _inversion_nodes(txn: Txn, data: CID, ops: list[RepoOp], prev_data: CID) -> set[CID]:
    """The MST nodes of the new tree that inverting `ops` reads (sync 1.1 "proof" blocks).

    The inversion runs here on an uncached node store that records every block it reads, and
    must land on the previous root: a self-check of the commit before it is written.
    """
    inverse = [(op.path, op.prev) for op in reversed(ops)]
    passes = [inverse] if len(ops) == 1 else [inverse, *([step] for step in inverse)]
    read: set[CID] = set()
    for batch in passes:
        tracker = OverlayBlockStore(txn.staged)
        root = tree.apply(NodeStore(tracker, _PROOF_CACHE), data, batch)
        if len(batch) == len(ops) and root != prev_data:
            raise RuntimeError("inverting the commit's ops does not give the previous MST root")
        read |= tracker.read
    return read

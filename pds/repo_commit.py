"""Signed commits inside an account's write transaction (spec-repository.md, spec-sync.md).

Runs entirely in the actor store's worker thread: read the head, check swaps, edit the MST,
sign, collect the `#commit` event's blocks (new blocks plus the nodes a consumer needs to invert
the ops, sync 1.1), and write blocks, records, root and outbox row in the same transaction.
One commit may carry several callers' write batches (a group commit): each batch is checked in
order against the state the batches before it leave, and a batch that fails drops out alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from atcore.blockstore import MemoryBlockStore
from atcore.car import write_car
from atcore.cid import CID
from atcore.commit import create_commit
from atcore.frames import CommitEvent, RepoOp, SyncEvent, encode_frame
from atcore.keys import PrivateKey
from atcore.mst import tree
from atcore.mst.diff import RecordOp
from atcore.mst.invert import invert_ops
from atcore.mst.proof import inductive_proof_nodes
from atcore.syntax.did import Did
from atcore.syntax.tid import Tid, TidClock
from atcore.xrpc.errors import InvalidRequest
from pds.actor_store.sql import RootRow
from pds.actor_store.store import Txn
from pds.repo_prepare import PreparedWrite, ValidationStatus


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


@dataclass(frozen=True)
class Batch:
    """One caller's writes, applied atomically; `swap_commit` binds the head they start from."""

    writes: Sequence[PreparedWrite]
    swap_commit: CID | None = None


@dataclass(frozen=True)
class GroupCommit:
    """Each batch's outcome (its share of the commit, None if it changed nothing, or the
    InvalidRequest that failed it alone) and the commit all of them made, if any."""

    outcomes: list[CommitResult | InvalidRequest | None]
    commit: CommitResult | None


@dataclass
class _Changes:
    ops: list[RepoOp]
    results: list[WriteResult]
    records: dict[CID, bytes]
    links: list[tuple[str, tuple[CID, ...]]]


def commit_writes(
    txn: Txn,
    did: Did,
    key: PrivateKey,
    clock: TidClock,
    batches: Sequence[Batch],
    now: str,
    sequenced_upto: int,
) -> GroupCommit:
    """Apply `batches` in order as one commit (none when no batch changed anything).

    Batches must write distinct records (the writer starts a new group otherwise), so the
    earlier batches of a group change nothing a later batch's record checks read; they do move
    the head a later batch's swap_commit names.
    """
    sql = txn.sql
    root = sql.root()
    if root is None:
        raise InvalidRequest(f"Could not find repo: {did}", "RepoNotFound")
    group = _Changes([], [], {}, [])
    shares: list[list[WriteResult] | InvalidRequest | None] = []
    paths: set[str] = set()
    for batch in batches:
        try:
            if batch.swap_commit is not None and (batch.swap_commit != root.cid or group.ops):
                # After an earlier batch of this group the head is that batch's commit.
                raise InvalidRequest(f"Commit was at {root.cid.encode()}", "InvalidSwap")
            changes = _check(txn, did, batch.writes)
        except InvalidRequest as exc:
            shares.append(exc)
            continue
        for op in changes.ops:
            if op.path in paths:
                raise ValueError(f"two batches of one group write {op.path}")
            paths.add(op.path)
        shares.append(changes.results if changes.ops else None)
        group.ops += changes.ops
        group.results += changes.results
        group.records.update(changes.records)
        group.links += changes.links
    if not group.ops:
        return GroupCommit([s if isinstance(s, InvalidRequest) else None for s in shares], None)
    commit = _commit(txn, did, key, clock, root, group, now, sequenced_upto)
    outcomes: list[CommitResult | InvalidRequest | None] = [
        s if s is None or isinstance(s, InvalidRequest) else replace(commit, results=s)
        for s in shares
    ]
    return GroupCommit(outcomes, commit)


def _check(txn: Txn, did: Did, writes: Sequence[PreparedWrite]) -> _Changes:
    """One batch's ops against the stored records; InvalidRequest when it cannot apply."""
    sql = txn.sql
    changes = _Changes([], [], {}, [])
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
            changes.ops.append(RepoOp("delete", w.path, None, current))
            changes.results.append(WriteResult("delete", uri, None, None))
            continue
        assert w.cid is not None and w.block is not None
        if w.action == "create" and current is not None:
            raise InvalidRequest(f"Record already exists: {uri}")
        if w.action == "update" and current is None and not w.upsert:
            raise InvalidRequest(f"Could not find a record with key: {w.path}")
        for blob in w.blobs:
            if sql.blob(blob) is None:
                raise InvalidRequest(f"Could not find blob: {blob.encode()}", "BlobNotFound")
        changes.links.append((w.path, w.blobs))
        action = "create" if current is None else "update"
        changes.ops.append(RepoOp(action, w.path, w.cid, current))
        changes.records[w.cid] = w.block
        changes.results.append(WriteResult(action, uri, w.cid, w.validation))
    return changes


def _commit(
    txn: Txn,
    did: Did,
    key: PrivateKey,
    clock: TidClock,
    root: RootRow,
    group: _Changes,
    now: str,
    sequenced_upto: int,
) -> CommitResult:
    sql, ops = txn.sql, group.ops
    data = tree.apply(txn.nodes, root.data, [(op.path, op.cid) for op in ops])
    clock.observe(Tid(root.rev))
    rev = clock.next()
    commit, block, cid = create_commit(did, data, rev, key)
    new = {cid: block, **txn.staged.new, **group.records}
    record_ops = [RecordOp(op.path, op.prev, op.cid) for op in ops]
    proof = inductive_proof_nodes(txn.nodes, data, record_ops)
    event_blocks = {**new, **{c: sql.get(c) for c in proof if c not in new}}
    _check_inversion(event_blocks, data, record_ops, root.data)
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
    for path, blobs in group.links:
        sql.link_blobs(path, blobs)
    dropped = tuple(sql.drop_orphan_blobs(unlinked))
    sql.set_root(did, cid, rev, data)
    outbox_id = sql.add_outbox("commit", rev, encode_frame(event))
    return CommitResult(cid, rev, group.results, event, outbox_id, root.rev, dropped_blobs=dropped)


def _check_inversion(
    blocks: dict[CID, bytes], data: CID, ops: list[RecordOp], prev_data: CID
) -> None:
    """Self-check before writing: a consumer holding only the event's blocks inverts the ops
    back to the previous root (a missing proof node raises MissingBlock)."""
    if invert_ops(MemoryBlockStore(blocks.items()), data, ops) != prev_data:
        raise RuntimeError("inverting the commit's ops does not give the previous MST root")

"""com.atproto.repo.importRepo: a repository CAR from another PDS (pds-ACCOUNT_MIGRATION.md,
guide-account-migration.md, spec-repository.md).

The body streams through the bounded CAR reader (every block hash-checked) into memory, at most
`max_import_size` bytes. Before the account's store is touched, the root must be a v3 commit of
this account's DID, its rev no later than a little past now, and its signature made by a key
the DID has published (its current document's, this PDS's own for the account, or for did:plc
any atproto key in its operation log: a backup may predate a key rotation). Then, in one
transaction of the account's store: the MST must be canonical (`validate_tree`), every record
it gained must be present, at most 1 MiB of strict DAG-CBOR forming a map, under a valid
collection/rkey path. Blocks may also come from what is already stored, so a `since` diff of the
old repo imports too. The import replaces the repo: records it lacks are deleted, as the
reference's diff against the current repo does. Record blobs are linked; those not uploaded yet
are what `listMissingBlobs` answers until they are.

The head becomes a NEW commit over the imported MST root, signed with this PDS's key for the
account under a fresh rev. The imported commit is not kept as the head because (1) it is
signed with the old PDS's key: once the PLC update names this PDS's key, a relay or a
`getRepo` consumer checking the head against the DID document would reject it; (2) later
writes must chain from a rev this PDS's clock issued, greater than the imported one; the
reference rewrites only the stored rev, leaving a head whose block disagrees with its index.
An active account announces the new head with `#sync` in the same transaction's outbox; a
migrating (deactivated) account announces nothing until activateAccount sends `#sync` of the
then-current head.
"""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncIterable
from dataclasses import dataclass

from atcore import cbor
from atcore.blockstore import OverlayBlockStore
from atcore.car import CarLimits, aiter_car_blocks, write_car
from atcore.cid import CID
from atcore.commit import Commit, create_commit, decode_commit, verify_commit
from atcore.datamodel import blob_refs
from atcore.errors import IdentityError, InvalidCar, InvalidKey, MissingBlock
from atcore.frames import SyncEvent, encode_frame
from atcore.keys import PrivateKey, PublicKey, parse_did_key
from atcore.mst import walk
from atcore.mst.diff import diff
from atcore.mst.store import NodeStore
from atcore.syntax.datetime import now_iso
from atcore.syntax.did import Did
from atcore.syntax.nsid import parse_nsid
from atcore.syntax.recordkey import parse_record_key
from atcore.syntax.tid import Tid, TidClock, tid_timestamp
from atcore.xrpc.errors import InvalidRequest
from pds.actor_store import RepoMissing
from pds.actor_store.store import ActorStore, Txn
from pds.context import AppContext
from pds.repo_prepare import MAX_RECORD_BYTES
from pds.sequencer import Sequencer

# Revs past the wall clock by more than this are refused: observing one would push every
# later TID this PDS issues (all accounts' revs and record keys) into the future.
MAX_REV_SKEW_SECONDS = 300
# Decoded MST nodes cached while one import is checked: its own cache, so an import that is
# rolled back leaves nothing in the writer's.
IMPORT_NODE_CACHE = 20_000


@dataclass(frozen=True)
class Imported:
    """The repo's new head, how many records it holds, and its `#sync` if one was sent."""

    cid: CID
    rev: str
    records: int
    event: SyncEvent | None = None
    outbox_id: int = 0
    dropped_blobs: tuple[CID, ...] = ()


async def import_repo(
    ctx: AppContext, did: str, active: bool, chunks: AsyncIterable[bytes]
) -> Imported:
    """Verify the CAR streamed in `chunks` and make it the repo of `did` (see the module doc).

    Raises InvalidRequest naming what is wrong; the caller bounds `chunks` (PayloadTooLarge).
    """
    root, blocks = await read_import(chunks, CarLimits(max_total_size=ctx.config.max_import_size))
    commit = read_commit(did, root, blocks)
    try:
        store = await ctx.actors.open(did)
        key = await ctx.actors.signing_key(did)
    except RepoMissing:
        raise InvalidRequest(f"Could not find repo: {did}", "RepoNotFound") from None
    await check_signature(ctx, commit, key.public_key())
    async with ctx.actors.lock(did):
        fn = functools.partial(
            apply_import,
            did=commit.did,
            key=key,
            clock=ctx.actors.clock,
            commit=commit,
            blocks=blocks,
            announce=active,
            now=now_iso(),
            sequenced_upto=store.sequenced_upto,
        )
        with ctx.sequencer.outbox_write():
            result = await store.run(functools.partial(_logged, ctx.sequencer, store, fn))
    ctx.actors.blobs.delete(did, list(result.dropped_blobs))
    return result


def _logged(sequencer: Sequencer, store: ActorStore, fn: functools.partial[Imported]) -> Imported:
    """The worker-thread part: the transaction, then its `#sync` (if any) in the global log."""
    result = store.transact_sync(fn)
    if result.event is not None:
        sequencer.log_sync(store.did, [("sync", result.rev, result.event)])
        store.sequenced_upto = result.outbox_id
    return result


async def read_import(
    chunks: AsyncIterable[bytes], limits: CarLimits
) -> tuple[CID, dict[CID, bytes]]:
    """The CAR's one root and its hash-checked blocks; InvalidRequest for a malformed CAR."""
    reader = aiter_car_blocks(chunks, limits)
    blocks: dict[CID, bytes] = {}
    try:
        roots = await reader.roots()
        if len(roots) != 1:
            raise InvalidRequest(f"expected one root, the CAR has {len(roots)}")
        async for cid, data in reader:
            blocks.setdefault(cid, data)
    except InvalidCar as exc:
        raise InvalidRequest(f"invalid CAR: {exc}") from None
    return roots[0], blocks


def read_commit(did: str, root: CID, blocks: dict[CID, bytes]) -> Commit:
    """The imported commit: present, a v3 commit of `did`, its rev not in the future."""
    block = blocks.get(root)
    if block is None:
        raise InvalidRequest(f"the CAR lacks its root block {root.encode()}")
    try:
        commit = decode_commit(block)
    except ValueError as exc:
        raise InvalidRequest(f"the CAR root is not a repo commit: {exc}") from None
    if commit.did != did:
        raise InvalidRequest(f"the CAR holds the repo of {commit.did}, not of {did}")
    if tid_timestamp(commit.rev) > (time.time() + MAX_REV_SKEW_SECONDS) * 1_000_000:
        raise InvalidRequest(f"the commit's rev {commit.rev} is in the future")
    return commit


async def check_signature(ctx: AppContext, commit: Commit, own_key: PublicKey) -> None:
    """InvalidRequest unless a key the DID has published signed `commit`: this PDS's own key
    for it, its current document's, or (did:plc) any atproto key in its operation log."""
    if verify_commit(commit, own_key):
        return
    did = commit.did
    try:
        current = (await ctx.resolver.refresh(did)).signing_key
    except IdentityError:
        current = None
    if current is not None and verify_commit(commit, current):
        return
    if did.startswith("did:plc:"):
        for key in await _plc_keys(ctx, did):
            if verify_commit(commit, key):
                return
    raise InvalidRequest(f"the commit's signature is by no signing key {did} has published")


async def _plc_keys(ctx: AppContext, did: str) -> list[PublicKey]:
    """Every atproto signing key in the DID's PLC operation log (legacy ops: `signingKey`)."""
    try:
        ops = await ctx.plc.get_op_log(did)
    except IdentityError:
        return []
    keys = []
    for op in ops:
        methods = op.get("verificationMethods")
        text = methods.get("atproto") if isinstance(methods, dict) else op.get("signingKey")
        if isinstance(text, str):
            try:
                keys.append(parse_did_key(text))
            except (InvalidKey, ValueError):
                continue
    return keys


def apply_import(
    txn: Txn,
    did: Did,
    key: PrivateKey,
    clock: TidClock,
    commit: Commit,
    blocks: dict[CID, bytes],
    announce: bool,
    now: str,
    sequenced_upto: int,
) -> Imported:
    """Check the imported tree against what is stored and make it the repo, re-signed."""
    sql = txn.sql
    root = sql.root()
    if root is None:
        raise InvalidRequest(f"Could not find repo: {did}", "RepoNotFound")
    staged = OverlayBlockStore(sql)
    for cid, data in blocks.items():
        staged.put(cid, data)
    nodes = NodeStore(staged, IMPORT_NODE_CACHE)
    try:
        count = walk.validate_tree(nodes, commit.data)
        changes = diff(nodes, root.data, commit.data)
        records = {op.new: _record(op.key, op.new, staged) for op in changes.record_ops if op.new}
    except MissingBlock as exc:
        raise InvalidRequest(f"the CAR lacks a block of the repo: {_show(exc.cid)}") from None
    except ValueError as exc:
        raise InvalidRequest(f"invalid repo: {exc}") from None
    clock.observe(Tid(root.rev))
    clock.observe(commit.rev)
    rev = clock.next()
    _, block, cid = create_commit(did, commit.data, rev, key)
    new = [(c, staged.get(c)) for c in changes.created_nodes]
    new += [(c, data) for c, (data, _) in records.items()]
    sql.put_blocks([*new, (cid, block)], rev)
    sql.drop_blocks([*changes.deleted_nodes, root.cid])
    unlinked: list[CID] = []
    for op in changes.record_ops:
        collection, _, rkey = op.key.partition("/")
        if op.old is not None:
            unlinked += sql.unlink_blobs(op.key)
        if op.new is None:
            sql.delete_record(collection, rkey)
        else:
            sql.put_record(collection, rkey, op.new, rev, now)
            sql.link_blobs(op.key, records[op.new][1])
    sql.drop_unreferenced_records(op.old for op in changes.record_ops if op.old is not None)
    dropped = tuple(sql.drop_orphan_blobs(unlinked))
    sql.set_root(did, cid, rev, commit.data)
    if not announce:
        return Imported(cid, rev, count, dropped_blobs=dropped)
    event = SyncEvent(0, did, write_car(cid, [(cid, block)]), rev, now)
    sql.clear_outbox(sequenced_upto)
    outbox_id = sql.add_outbox("sync", rev, encode_frame(event))
    return Imported(cid, rev, count, event, outbox_id, dropped)


def _record(path: str, cid: CID, blocks: OverlayBlockStore) -> tuple[bytes, list[CID]]:
    """A record the import adds: its block and the blobs it references."""
    collection, _, rkey = path.partition("/")
    try:
        parse_nsid(collection)
        parse_record_key(rkey)
    except ValueError as exc:
        raise InvalidRequest(f"record path {path!r:.300} is not collection/rkey: {exc}") from None
    try:
        data = blocks.get(cid)
    except MissingBlock:
        raise InvalidRequest(f"the CAR lacks record {path} ({cid.encode()})") from None
    if len(data) > MAX_RECORD_BYTES:
        raise InvalidRequest(f"record {path} is larger than {MAX_RECORD_BYTES} bytes")
    try:
        value = cbor.decode(data)
    except ValueError as exc:
        raise InvalidRequest(f"record {path} is not strict DAG-CBOR: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidRequest(f"record {path} is not a map")
    return data, blob_refs(value)


def _show(cid: object) -> str:
    return cid.encode() if isinstance(cid, CID) else str(cid)

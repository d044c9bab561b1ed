"""A firehose #commit as index changes (spec-sync.md, "Firehose"; spec-repository.md): the
commit's signature is checked against the DID's current key and its ops must invert to its
prevData (unless the relay is trusted), then each app.bsky record op becomes a change; a
record that fails its lexicon becomes a SkipRecord."""

from __future__ import annotations

from typing import Final

from appview.changes import Change, DeleteRecord, PutRecord, SkipRecord
from appview.records import INDEXED
from atcore import cbor
from atcore.blockstore import MemoryBlockStore
from atcore.car import CarLimits, read_car_raw
from atcore.cid import CID
from atcore.commit import Commit, decode_commit, verify_commit
from atcore.datamodel import to_json
from atcore.errors import (
    DecodeError,
    IdentityError,
    InvalidCar,
    InvalidCommit,
    InvalidMst,
    InvalidRecord,
    InvalidSyntax,
)
from atcore.frames import CommitEvent
from atcore.identity.resolver import IdentityResolver
from atcore.lexicon import Catalog
from atcore.lexicon.validate import validate_record
from atcore.mst.diff import RecordOp
from atcore.mst.invert import invert_ops
from atcore.mst.tree import EMPTY_ROOT

# subscribeRepos #commit: blocks at most 2,000,000 bytes, records at most 1,000,000 bytes.
COMMIT_LIMITS: Final = CarLimits(
    max_blocks=10_000, max_block_size=1_000_000, max_total_size=2_000_000, max_header_size=1024
)


class Unverified(ValueError):
    """The commit does not verify: it is not indexed."""


def blocks_of(event: CommitEvent) -> MemoryBlockStore:
    try:
        _, raw = read_car_raw(event.blocks, COMMIT_LIMITS)
    except InvalidCar as exc:
        raise Unverified(f"bad CAR: {exc}") from exc
    store = MemoryBlockStore()
    for cid_bytes, data in raw.items():
        store.put_raw(cid_bytes, data)
    return store


async def verify(event: CommitEvent, blocks: MemoryBlockStore, resolver: IdentityResolver) -> None:
    """Raise Unverified unless the commit is signed by the repo's current key and its ops
    invert to its prevData; a failed signature refreshes the DID document once."""
    commit = _commit_of(event, blocks)
    try:
        doc = await resolver.resolve_did(event.repo)
        if doc.signing_key is None or not verify_commit(commit, doc.signing_key):
            doc = await resolver.refresh(event.repo)
    except (IdentityError, InvalidSyntax) as exc:
        raise Unverified(f"cannot resolve {event.repo}: {exc}") from exc
    if doc.signing_key is None or not verify_commit(commit, doc.signing_key):
        raise Unverified(f"signature does not verify with {event.repo}'s key")
    prev_data = event.prev_data if event.since is not None else event.prev_data or EMPTY_ROOT
    if prev_data is None:
        return  # sync 1.0 commits carry no prevData to invert against
    ops = [RecordOp(op.path, op.prev, op.cid) for op in event.ops]
    try:
        previous = invert_ops(blocks, commit.data, ops)
    except (InvalidMst, KeyError) as exc:
        raise Unverified(f"ops do not invert: {exc!r:.200}") from exc
    if previous != prev_data:
        raise Unverified("ops invert to a root other than prevData")


def _commit_of(event: CommitEvent, blocks: MemoryBlockStore) -> Commit:
    try:
        commit = decode_commit(blocks.get(event.commit))
    except (KeyError, InvalidCommit) as exc:
        raise Unverified(f"bad commit block: {exc!r:.200}") from exc
    if commit.did != event.repo or commit.rev != event.rev:
        raise Unverified("commit block does not match the event's repo and rev")
    return commit


def changes_of(
    event: CommitEvent, blocks: MemoryBlockStore, catalog: Catalog, indexed_at: str
) -> list[Change]:
    """The index changes of the commit's ops on app.bsky collections we index."""
    changes: list[Change] = []
    for op in event.ops:
        collection, _, rkey = op.path.partition("/")
        if collection not in INDEXED:
            continue
        uri = f"at://{event.repo}/{op.path}"
        if op.action == "delete":
            changes.append(DeleteRecord(uri, event.repo, collection))
            continue
        put = _put(event, op.cid, blocks, catalog, uri, collection, rkey, indexed_at)
        changes.append(put if put is not None else SkipRecord(collection))
    return changes


def _put(
    event: CommitEvent,
    cid: CID | None,
    blocks: MemoryBlockStore,
    catalog: Catalog,
    uri: str,
    collection: str,
    rkey: str,
    indexed_at: str,
) -> PutRecord | None:
    if cid is None or not blocks.has(cid):
        return None
    try:
        value = cbor.decode(blocks.get(cid))
        validate_record(catalog, collection, value, rkey)
    except (DecodeError, InvalidRecord, InvalidSyntax, ValueError):
        return None
    return PutRecord(uri, event.repo, collection, cid.encode(), to_json(value), indexed_at)

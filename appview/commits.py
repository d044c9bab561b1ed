"""Firehose #commit and #sync events as index changes (spec-sync.md, "Firehose"): checked with
atcore.firehose_verify (the CAR, and unless the relay is trusted the signature against the
DID's current key and the ops' inversion to prevData), then each app.bsky record op becomes a
change; a record that fails its lexicon becomes a SkipRecord."""

from __future__ import annotations

from appview.changes import DeleteRecord, PutRecord, RecordChange, RepoCommit, RepoSync, SkipRecord
from appview.records import INDEXED
from atcore import cbor
from atcore.blockstore import BlockStore
from atcore.cid import CID
from atcore.datamodel import to_json
from atcore.errors import DecodeError, InvalidRecord, InvalidSyntax
from atcore.firehose_verify import DidResolver, Unverified, check_sync, commit_blocks
from atcore.frames import CommitEvent, SyncEvent
from atcore.lexicon import Catalog
from atcore.lexicon.validate import validate_record

__all__ = ["Unverified", "commit_changes", "record_change", "sync_change"]


async def commit_changes(
    event: CommitEvent, resolver: DidResolver | None, catalog: Catalog, indexed_at: str
) -> RepoCommit | RepoSync:
    """The commit's changes to the index; Unverified if it fails a check. `resolver` None
    trusts the relay. A commit too big to carry its blocks only says the repo moved on."""
    if event.too_big:
        return RepoSync(event.repo, event.rev)
    blocks = await commit_blocks(event, resolver)
    changes: list[RecordChange] = []
    for op in event.ops:
        if op.action == "delete":
            collection = op.path.partition("/")[0]
            if collection in INDEXED:
                uri = f"at://{event.repo}/{op.path}"
                changes.append(DeleteRecord(uri, event.repo, collection))
            continue
        assert op.cid is not None  # commit_blocks checked every put's record is in the CAR
        change = record_change(event.repo, op.path, op.cid, blocks, catalog, indexed_at)
        if change is not None:
            changes.append(change)
    return RepoCommit(event.repo, event.rev, event.since, changes)


async def sync_change(event: SyncEvent, resolver: DidResolver | None) -> RepoSync:
    await check_sync(event, resolver)
    return RepoSync(event.did, event.rev)


def record_change(
    did: str, path: str, cid: CID, blocks: BlockStore, catalog: Catalog, indexed_at: str
) -> PutRecord | SkipRecord | None:
    """The record at `path` as a change, if its collection is indexed: a SkipRecord when it is
    not lexicon-valid."""
    collection, _, rkey = path.partition("/")
    if collection not in INDEXED:
        return None
    try:
        value = cbor.decode(blocks.get(cid))
        validate_record(catalog, collection, value, rkey)
    except (DecodeError, InvalidRecord, InvalidSyntax, ValueError, KeyError):
        return SkipRecord(collection)
    return PutRecord(
        f"at://{did}/{path}", did, collection, cid.encode(), to_json(value), indexed_at
    )

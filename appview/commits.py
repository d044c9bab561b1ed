"""Firehose #commit and #sync events as index changes (spec-sync.md, "Firehose"): checked with
atcore.firehose_verify (the CAR, and unless the relay is trusted the signature against the
DID's current key and the ops' inversion to prevData), then each app.bsky record op becomes a
change; a record that fails its lexicon becomes a SkipRecord. `changes_batch` does the same for
commits whose DID's key is at hand, in worker processes (appview.ingest)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

from appview.changes import DeleteRecord, PutRecord, RecordChange, RepoCommit, RepoSync, SkipRecord
from appview.records import INDEXED
from atcore import cbor
from atcore.blockstore import BlockStore
from atcore.cid import CID, cid_text
from atcore.datamodel import to_json
from atcore.errors import DecodeError, InvalidRecord, InvalidSyntax
from atcore.firehose_verify import (
    DidResolver,
    Unverified,
    WrongKey,
    check_sync,
    checked_blocks,
    commit_blocks,
)
from atcore.frames import CommitEvent, SyncEvent, WireCommit, commit_from_wire
from atcore.keys import cached_public_key
from atcore.lexicon import Catalog
from atcore.lexicon.validate import validate_record

__all__ = [
    "Job",
    "Unverified",
    "WrongKey",
    "changes_batch",
    "commit_changes",
    "record_change",
    "sync_change",
]

# A commit for a worker: the event, its DID's signing key as (curve, point) or None to trust
# the relay, and the time it is indexed at.
Job = tuple[WireCommit, tuple[str, bytes] | None, str]


async def commit_changes(
    event: CommitEvent, resolver: DidResolver | None, catalog: Catalog, indexed_at: str
) -> RepoCommit | RepoSync:
    """The commit's changes to the index; Unverified if it fails a check. `resolver` None
    trusts the relay. A commit too big to carry its blocks only says the repo moved on."""
    if event.too_big:
        return RepoSync(event.repo, event.rev)
    return _changes(event, await commit_blocks(event, resolver), catalog, indexed_at)


def changes_batch(jobs: Sequence[Job]) -> list[RepoCommit | Unverified]:
    """Run in a worker: each commit's changes, or why it is not indexed (WrongKey: the
    signature does not verify with the key given, which may have rotated)."""
    catalog = _builtin_catalog()
    results: list[RepoCommit | Unverified] = []
    for wire, key, indexed_at in jobs:
        event = commit_from_wire(wire)
        try:
            blocks = checked_blocks(event, None if key is None else cached_public_key(*key))
        except Unverified as exc:
            results.append(exc)
            continue
        results.append(_changes(event, blocks, catalog, indexed_at))
    return results


@cache
def _builtin_catalog() -> Catalog:
    return Catalog.load_builtin()


def _changes(
    event: CommitEvent, blocks: BlockStore, catalog: Catalog, indexed_at: str
) -> RepoCommit:
    changes: list[RecordChange] = []
    for op in event.ops:
        if op.action == "delete":
            collection = op.path.partition("/")[0]
            if collection in INDEXED:
                uri = f"at://{event.repo}/{op.path}"
                changes.append(DeleteRecord(uri, event.repo, collection))
            continue
        assert op.cid is not None  # the checks made sure every put's record is in the CAR
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
        f"at://{did}/{path}", did, collection, cid_text(cid), to_json(value), indexed_at
    )

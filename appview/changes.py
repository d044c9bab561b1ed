"""The changes ingest hands to the store, one transaction per batch together with the cursor:
the store interface both backends implement (spec-sync.md, "Firehose" and "Record-Level
Synchronization"). Record changes reach the store inside the repo event that carries them
(`RepoCommit`, `Backfilled`), so the store can check them against the repo's synchronization
state in the same transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class PutRecord:
    """A record created or updated; `value` is its JSON form, already lexicon-valid."""

    uri: str
    did: str
    collection: str
    cid: str
    value: dict[str, Any]
    indexed_at: str


@dataclass(frozen=True, slots=True)
class DeleteRecord:
    uri: str
    did: str
    collection: str


@dataclass(frozen=True, slots=True)
class SetHandle:
    """The account's verified handle (None: it does not resolve back to the DID)."""

    did: str
    handle: str | None
    indexed_at: str


@dataclass(frozen=True, slots=True)
class SetStatus:
    """The account's hosting status: None while active, else why its content is hidden."""

    did: str
    status: str | None
    indexed_at: str


@dataclass(frozen=True, slots=True)
class SkipRecord:
    """A record that failed its lexicon: counted, not indexed."""

    collection: str


RecordChange = PutRecord | DeleteRecord | SkipRecord


@dataclass(frozen=True, slots=True)
class RepoCommit:
    """A verified #commit: its record changes apply when the repo is synchronized and `rev`
    is newer than the rev indexed; a repo never seen whose commit has a `since` (it existed
    before), or whose `since` is not the rev indexed, is desynchronized instead (backfilled)."""

    did: str
    rev: str
    since: str | None
    changes: Sequence[RecordChange]


@dataclass(frozen=True, slots=True)
class RepoSync:
    """A verified #sync: the repo's head is now `rev`; desynchronized unless that is the rev
    indexed."""

    did: str
    rev: str


@dataclass(frozen=True, slots=True)
class Backfilled:
    """A repo's whole verified export at `rev` (com.atproto.sync.getRepo): the index's records
    of the repo become exactly `records` (those whose CID differs are put again, those not in
    it deleted), and the repo synchronized at `rev`."""

    did: str
    rev: str
    records: Sequence[PutRecord]
    skipped: Sequence[SkipRecord]


Change = RecordChange | SetHandle | SetStatus | RepoCommit | RepoSync | Backfilled

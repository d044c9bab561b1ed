"""The changes ingest hands to the store, one transaction per batch together with the cursor:
the store interface every backend (SQLite today) implements (spec-sync.md, "Firehose")."""

from __future__ import annotations

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


Change = PutRecord | DeleteRecord | SetHandle | SetStatus | SkipRecord

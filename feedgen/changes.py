"""What a subscription hands the indexer, whatever its wire format: records put, records
deleted, accounts whose status changed or that are gone, each event with the position to resume
after it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from feedgen.sdk import Record


@dataclass(frozen=True, slots=True)
class Deleted:
    uri: str


@dataclass(frozen=True, slots=True)
class AccountGone:
    """A deleted account: every record of it leaves the feed."""

    did: str


@dataclass(frozen=True, slots=True)
class AccountStatus:
    """An #account event: while an account is not active (taken down, suspended, deactivated,
    deleted) its records are hidden from skeletons; active again, they are shown again."""

    did: str
    active: bool


Change = Record | Deleted | AccountStatus | AccountGone


@dataclass(frozen=True, slots=True)
class Event:
    """One upstream event: the position to resume after it, and what it changed."""

    position: int
    changes: Sequence[Change]


class Source(Protocol):
    """An upstream stream of events, resumed after `position` (None: from now)."""

    name: str

    def events(self, position: int | None) -> AsyncIterator[Event]: ...


def account_changes(did: str, active: bool, status: str | None) -> list[Change]:
    """What an #account event changes: the account hidden or shown, and forgotten if deleted."""
    changes: list[Change] = [AccountStatus(did, active)]
    if not active and status == "deleted":
        changes.append(AccountGone(did))
    return changes


def subject_of(value: dict[str, Any]) -> str | None:
    """The record's subject: a DID (follow, block) or the URI of a strong ref (like, repost)."""
    subject = value.get("subject")
    if isinstance(subject, str):
        return subject
    if isinstance(subject, dict) and isinstance(subject.get("uri"), str):
        return str(subject["uri"])
    return None

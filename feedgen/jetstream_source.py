"""Reading a Jetstream v1 `/subscribe` stream into changes (blog-jetstream.md): the official
Jetstream's JSON, which `skyloft jetstream serve` also serves.

The stream is asked only for the feed's collections (`wantedCollections`). Each event's
`time_us` is its position and a record's time; `cursor` replays from that time inclusive, so a
restart asks for the microsecond after the last stored event. A Jetstream trusts the relay and
checks what it is configured to; its JSON carries no proof to check again here.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any, Final
from urllib.parse import urlencode

from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException

from feedgen.changes import Change, Deleted, Event, account_changes
from feedgen.sdk import Record

MAX_MESSAGE: Final = 2 * 1024 * 1024


class JetstreamSource:
    """The Jetstream at `url` (ws:// or wss://, with or without `/subscribe`)."""

    name = "jetstream"

    def __init__(self, url: str, collections: frozenset[str]) -> None:
        base = url.split("?", 1)[0].rstrip("/")
        self.url = base if base.endswith("/subscribe") else base + "/subscribe"
        self.collections = collections

    async def events(self, position: int | None) -> AsyncIterator[Event]:
        query: list[tuple[str, str | int]] = [("wantedCollections", c) for c in self.collections]
        if position is not None:
            query.append(("cursor", position + 1))
        url = f"{self.url}?{urlencode(query)}"
        try:
            async with connect(url, max_size=MAX_MESSAGE, proxy=None, open_timeout=10) as ws:
                async for message in ws:
                    try:
                        body = json.loads(message)
                    except ValueError:  # asking again would bring the same bytes back: skip
                        continue
                    event = parse_event(body)
                    if event is not None:
                        yield event
        except WebSocketException as exc:
            raise ConnectionError(f"{self.url}: {exc}") from exc


def parse_event(body: Any) -> Event | None:
    """One v1 event's changes; None for anything that is not a well-formed event."""
    if not isinstance(body, dict):
        return None
    did, time_us, kind = body.get("did"), body.get("time_us"), body.get("kind")
    if not isinstance(did, str) or not isinstance(time_us, int):
        return None
    changes: list[Change] = []
    if kind == "commit" and isinstance(commit := body.get("commit"), dict):
        change = _commit(did, time_us, commit)
        if change is not None:
            changes.append(change)
    elif kind == "account" and isinstance(account := body.get("account"), dict):
        status = account.get("status")
        active = account.get("active") is not False
        changes.extend(account_changes(did, active, status if isinstance(status, str) else None))
    return Event(time_us, changes)


def _commit(did: str, time_us: int, commit: dict[str, Any]) -> Change | None:
    collection, rkey = commit.get("collection"), commit.get("rkey")
    if not isinstance(collection, str) or not isinstance(rkey, str):
        return None
    operation = commit.get("operation")
    if operation == "delete":
        return Deleted(f"at://{did}/{collection}/{rkey}")
    record, cid = commit.get("record"), commit.get("cid")
    if operation in ("create", "update") and isinstance(record, dict) and isinstance(cid, str):
        return Record(did, collection, rkey, cid, record, time_us)
    return None

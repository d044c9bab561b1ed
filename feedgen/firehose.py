"""Reading a relay's `com.atproto.sync.subscribeRepos` into changes (spec-event-stream.md;
spec-sync.md, "Firehose consumers").

A #commit touching a collection the feed stores is checked with atcore.firehose_verify (the
signature and MST proof too, unless the relay is trusted), then each op on such a collection
becomes a Record (its block decoded) or a Deleted; commits touching nothing the feed stores
are passed over unchecked, only moving the cursor. An #account event becomes AccountStatus,
and AccountGone too when the account is deleted.

Most frames are of no use to a feed (bench/feedgen.py's traffic: #identity, #sync and commits
touching other collections, ~57%). Their seq is read at a glance, the body decoded as plain
DAG-CBOR without decode_frame's strict checks and event objects (~4 us a frame instead of ~20):
those checks guard what is used, and nothing of these frames is. A frame the glance cannot read
goes through decode_frame like the rest.
The relay's seq is the position; `cursor=N` resumes right after N (a relay whose log was reset
answers FutureCursor, and is then followed live).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from typing import Final

from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException

from atcore import cbor
from atcore.cid import cid_text
from atcore.errors import DecodeError
from atcore.firehose_verify import DidResolver, Unverified, commit_blocks
from atcore.frames import (
    MAX_FRAME_SIZE,
    AccountEvent,
    CommitEvent,
    ErrorFrame,
    decode_frame,
    split_frame,
)
from feedgen.changes import Change, Deleted, Event, account_changes
from feedgen.sdk import Record

log = logging.getLogger(__name__)

SUBSCRIBE_REPOS: Final = "/xrpc/com.atproto.sync.subscribeRepos"
# Message types whose frames the feed may pass over (a #commit only if it touches none of the
# feed's collections); #account changes what pages show, and the rest carries no seq.
PASSED_OVER: Final = frozenset({"#commit", "#identity", "#sync"})
NOTHING: Final[tuple[Change, ...]] = ()


class FirehoseSource:
    """The relay at `url` (ws:// or wss://, with or without the method's path)."""

    name = "firehose"

    def __init__(self, url: str, collections: frozenset[str], resolver: DidResolver | None) -> None:
        self.url = url if url.endswith(SUBSCRIBE_REPOS) else url.rstrip("/") + SUBSCRIBE_REPOS
        self.collections = collections
        self.resolver = resolver
        self.dropped = 0
        self._relay_reset = False

    async def events(self, position: int | None) -> AsyncIterator[Event]:
        # A relay whose log was reset answers our cursor with FutureCursor: follow it live.
        live, self._relay_reset = position is None or self._relay_reset, False
        url = self.url if live else f"{self.url}?cursor={position}"
        try:
            async with connect(
                url, max_size=MAX_FRAME_SIZE, compression=None, proxy=None, open_timeout=10
            ) as ws:
                async for frame in ws:
                    if isinstance(frame, str):
                        raise ValueError("the firehose sent a text frame")
                    try:
                        event = await self.event(frame)
                    except DecodeError as exc:
                        # Asking again from the same cursor would bring the same bytes back.
                        self.dropped += 1
                        log.warning("skipped an undecodable firehose frame: %s", exc)
                        continue
                    if event is not None:
                        yield event
        except WebSocketException as exc:
            raise ConnectionError(f"{self.url}: {exc}") from exc

    async def event(self, frame: bytes) -> Event | None:
        """One frame's changes; None for frames that carry no position (#info)."""
        seq = self.passed_over(frame)
        if seq is not None:
            return Event(seq, NOTHING)
        event = decode_frame(frame, trusted=self.resolver is None)
        if isinstance(event, ErrorFrame):
            self._relay_reset = event.error == "FutureCursor"
            raise ConnectionError(f"the relay sent {event.error}: {event.message or ''}")
        if isinstance(event, CommitEvent):
            return Event(event.seq, await self._commit(event))
        if isinstance(event, AccountEvent):
            return Event(event.seq, account_changes(event.did, event.active, event.status))
        seq = getattr(event, "seq", None)
        return None if seq is None else Event(seq, [])

    def passed_over(self, frame: bytes) -> int | None:
        """The seq of a frame that changes nothing for the feed (see the module's docstring),
        None for any other frame, or one the glance cannot read."""
        try:
            header, body = split_frame(frame)
        except DecodeError:
            return None
        if type(header) is not dict or header.get("op") != 1:
            return None
        kind = header.get("t")
        if kind not in PASSED_OVER:
            return None
        seq = body.get("seq") if isinstance(body, dict) else None
        if type(seq) is not int:
            return None
        if kind == "#commit":
            ops = body.get("ops")
            if type(ops) is not list:
                return None
            for op in ops:
                path = op.get("path") if isinstance(op, dict) else None
                if type(path) is not str or path.partition("/")[0] in self.collections:
                    return None
        return seq

    async def _commit(self, event: CommitEvent) -> list[Change]:
        ops = [op for op in event.ops if op.path.partition("/")[0] in self.collections]
        if not ops:
            return []
        try:
            blocks = await commit_blocks(event, self.resolver)
        except Unverified as exc:
            self.dropped += 1
            log.warning("dropped relay event %s: %s", event.seq, exc)
            return []
        now = time.time_ns() // 1000
        changes: list[Change] = []
        for op in ops:
            collection, _, rkey = op.path.partition("/")
            if op.cid is None:
                changes.append(Deleted(f"at://{event.repo}/{op.path}"))
                continue
            try:
                value = cbor.decode(blocks.get(op.cid))
            except DecodeError as exc:
                log.warning("skipped record %s of event %s: %s", op.path, event.seq, exc)
                continue
            if isinstance(value, dict):
                changes.append(Record(event.repo, collection, rkey, cid_text(op.cid), value, now))
        return changes

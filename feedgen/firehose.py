"""Reading a relay's `com.atproto.sync.subscribeRepos` into changes (spec-event-stream.md;
spec-sync.md, "Firehose consumers").

A #commit touching a collection the feed stores is checked with atcore.firehose_verify (the
signature and MST proof too, unless the relay is trusted), then each op on such a collection
becomes a Record (its block decoded) or a Deleted; commits touching nothing the feed stores
are passed over unchecked, only moving the cursor. An #account event becomes AccountStatus,
and AccountGone too when the account is deleted.
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
from atcore.errors import DecodeError
from atcore.firehose_verify import DidResolver, Unverified, commit_blocks
from atcore.frames import MAX_FRAME_SIZE, AccountEvent, CommitEvent, ErrorFrame, decode_frame
from feedgen.changes import Change, Deleted, Event, account_changes
from feedgen.sdk import Record

log = logging.getLogger(__name__)

SUBSCRIBE_REPOS: Final = "/xrpc/com.atproto.sync.subscribeRepos"


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
        event = decode_frame(frame)
        if isinstance(event, ErrorFrame):
            self._relay_reset = event.error == "FutureCursor"
            raise ConnectionError(f"the relay sent {event.error}: {event.message or ''}")
        if isinstance(event, CommitEvent):
            return Event(event.seq, await self._commit(event))
        if isinstance(event, AccountEvent):
            return Event(event.seq, account_changes(event.did, event.active, event.status))
        seq = getattr(event, "seq", None)
        return None if seq is None else Event(seq, [])

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
                changes.append(Record(event.repo, collection, rkey, op.cid.encode(), value, now))
        return changes

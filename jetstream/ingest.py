"""Reading the relay's firehose into the event log (spec-event-stream.md; blog-jetstream.md).

One connection to JETSTREAM_WS_URL, resumed from the relay seq persisted with the last events
written (or JETSTREAM_OVERRIDE_RELAY_CURSOR). Each frame goes through `handle`: decode, check
(atcore.firehose_verify), one event per op (a commit's ops, in order), stamped and appended to the
log. #identity, #account and #sync become events too (the last for subscribeEvents only:
/subscribe never sends it); #info only moves the cursor. A dropped connection is retried with
backoff. Trusting the relay (JETSTREAM_TRUST_RELAY), what it checked is not checked again: the
frame's values against the data model, the CAR's hashes, the commit block, signatures and
proofs; the frame's fields and every record are still decoded strictly.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Final

from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException

from atcore.errors import DecodeError
from atcore.firehose_verify import Unverified, check_sync, commit_blocks
from atcore.frames import (
    MAX_FRAME_SIZE,
    AccountEvent,
    CommitEvent,
    ErrorFrame,
    IdentityEvent,
    SyncEvent,
    decode_frame,
)
from atcore.identity.resolver import IdentityResolver
from jetstream.events import (
    Entry,
    account_json,
    commit_json,
    identity_json,
    record_json,
    sync_json,
)
from jetstream.log import EventLog

log = logging.getLogger(__name__)

__all__ = ["Ingest", "IngestStats"]

MAX_BACKOFF: Final = 30.0
_OPERATIONS: Final = frozenset({"create", "update", "delete"})


@dataclass
class IngestStats:
    frames: int = 0
    events: int = 0
    dropped: int = 0
    connected: bool = False


class Ingest:
    def __init__(
        self,
        ws_url: str,
        events: EventLog,
        resolver: IdentityResolver | None,
        *,
        cursor: int | None,
        backoff_base: float = 1.0,
    ) -> None:
        self.ws_url = ws_url
        self.events = events
        self.resolver = resolver
        self.cursor = cursor  # the relay seq to resume after; None: live
        self.stats = IngestStats()
        self._backoff_base = backoff_base
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="jetstream-ingest")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        delay = self._backoff_base
        while True:
            url = self.ws_url if self.cursor is None else f"{self.ws_url}?cursor={self.cursor}"
            try:
                async with connect(
                    url, max_size=MAX_FRAME_SIZE, compression=None, proxy=None, open_timeout=10
                ) as ws:
                    self.stats.connected = True
                    delay = self._backoff_base
                    async for message in ws:
                        if isinstance(message, str):
                            raise DecodeError("the firehose sent a text frame")
                        await self.handle(message)
                        await self.events.room()
            except (OSError, WebSocketException, DecodeError, TimeoutError) as exc:
                log.warning("relay connection %s ended: %s", self.ws_url, exc)
            finally:
                self.stats.connected = False
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF)

    async def handle(self, frame: bytes) -> None:
        """One firehose frame: decode, check, turn into events, append to the log."""
        self.stats.frames += 1
        event = decode_frame(frame, trusted=self.resolver is None)
        if isinstance(event, ErrorFrame):
            if event.error == "FutureCursor":  # the relay's log was reset: follow it live
                self.cursor = None
            raise DecodeError(f"the relay sent an error: {event.error} {event.message or ''}")
        seq = getattr(event, "seq", None)
        try:
            entries = await self._entries(event)
        except Unverified as exc:
            self.stats.dropped += 1
            log.warning("dropped relay event %s: %s", seq, exc)
            entries = []
        if seq is not None:
            self.cursor = seq
        self.stats.events += len(entries)
        self.events.append(entries, seq)

    async def _entries(self, event: Any) -> list[Entry]:
        if isinstance(event, CommitEvent):
            if event.too_big:
                raise Unverified("a tooBig commit carries no records")
            return self._commit(event, await self._blocks(event))
        if isinstance(event, IdentityEvent):
            if self.resolver is not None:
                self.resolver.invalidate(event.did)
            key = self.events.stamp()
            body = identity_json(event.did, key, event.seq, event.time, event.handle)
            return [Entry(key, "identity", event.did, None, body)]
        if isinstance(event, AccountEvent):
            key = self.events.stamp()
            body = account_json(event.did, key, event.seq, event.time, event.active, event.status)
            return [Entry(key, "account", event.did, None, body)]
        if isinstance(event, SyncEvent):
            await check_sync(event, self.resolver)
            key = self.events.stamp()
            body = sync_json(event.did, key, event.seq, event.time, event.rev, event.blocks)
            return [Entry(key, "sync", event.did, None, body)]
        return []

    def _commit(self, event: CommitEvent, blocks: dict[bytes, bytes]) -> list[Entry]:
        """One event per op, its record read from `blocks`."""
        ops = []
        for op in event.ops:
            collection, _, rkey = op.path.partition("/")
            if op.action not in _OPERATIONS:
                raise Unverified(f"unknown op action {op.action[:20]!r}")
            record = None
            if op.cid is not None:
                block = blocks.get(op.cid.cid_bytes)
                if block is None:
                    raise Unverified(f"record {op.path} is not in the CAR")
                try:
                    record = record_json(block)
                except DecodeError as exc:
                    raise Unverified(f"record {op.path} is not DAG-CBOR: {exc}") from exc
            ops.append((op.action, collection, rkey, record, op.cid))
        # Stamped only once every op is good: keys are never spent on a dropped event.
        entries = []
        for action, collection, rkey, record, cid in ops:
            key = self.events.stamp()
            body = commit_json(event.repo, key, event.rev, action, collection, rkey, record, cid)
            entries.append(Entry(key, "commit", event.repo, collection, body))
        return entries

    async def _blocks(self, event: CommitEvent) -> dict[bytes, bytes]:
        """The blocks of the commit's records by binary CID, checked as atcore.firehose_verify
        says (as the relay sent them when we trust it)."""
        store = await commit_blocks(event, self.resolver)
        return {op.cid.cid_bytes: store.get(op.cid) for op in event.ops if op.cid is not None}

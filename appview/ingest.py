"""Indexing the relay's firehose (spec-sync.md, "Firehose"; DESIGN.md, "Nothing lost").

One subscription to BSKY_REPO_PROVIDER's com.atproto.sync.subscribeRepos, resumed from the
cursor saved with the index. Each event is read, verified and turned into changes on the event
loop (`changes_for`); a writer task applies everything queued since its last write in one
transaction together with the seq of the last event in it, so a crash at any instant leaves
the index and the cursor in step: events after the cursor are received again and applied once.
Handles are resolved beside the stream (appview.identities) and queued the same way. A repo
the store finds desynchronized is backfilled from its export (appview.backfill), its live
events held until then.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterable, Callable
from typing import Final

import httpx
from websockets.exceptions import WebSocketException

from appview import commits
from appview.backfill import Backfill
from appview.changes import Backfilled, Change, RepoCommit, RepoSync, SetStatus
from appview.db import Database, index
from appview.identities import Identities
from appview.repo_export import Export, fetch_repo
from atcore.errors import DecodeError
from atcore.frames import AccountEvent, CommitEvent, IdentityEvent, SyncEvent
from atcore.identity.resolver import IdentityResolver
from atcore.lexicon import Catalog
from atcore.syntax.datetime import now_iso
from atcore.tasks import cancel_and_wait
from atcore.xrpc.stream import StreamError, subscribe

log = logging.getLogger(__name__)

SUBSCRIBE: Final = "/xrpc/com.atproto.sync.subscribeRepos"
SERVICE: Final = "repos"
# Changes queued beyond this make the reader wait for the writer (bounded memory).
MAX_PENDING: Final = 50_000
# Reading and verifying events rarely waits, so the reader gives the loop a turn this often
# (the writer takes its next batch, read requests run), and as soon as the writer is free and
# this many changes are queued (the reader and the writer's transaction then overlap).
YIELD_EVERY: Final = 64
BATCH: Final = 500
BACKOFF_MAX: Final = 30.0
WRITE_RETRY: Final = 1.0


class Ingest:
    """The firehose reader and the index writer, as two tasks."""

    def __init__(
        self,
        db: Database,
        provider: str,
        resolver: IdentityResolver,
        catalog: Catalog,
        http: httpx.AsyncClient,
        *,
        trust_relay: bool = False,
        backoff_base: float = 1.0,
    ) -> None:
        self.db = db
        self.provider = provider.rstrip("/")
        self.resolver = resolver
        self.catalog = catalog
        self.trust_relay = trust_relay
        self.backoff_base = backoff_base
        self.http = http  # guarded: exports come from the PDS a DID document names
        self.identities = Identities(resolver, self._queue)
        self.backfill = Backfill(self._fetch_repo, self._queue)
        self.unverified = 0
        self.received = 0
        self.applied_seq: int | None = None
        self._pending: list[Change] = []
        self._pending_seq: int | None = None
        self._wake = asyncio.Event()
        self._drained = asyncio.Event()
        self._writing = False
        self._applied = asyncio.Condition()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self, follow: bool = True) -> None:
        """Start the index writer and handle resolution, and with `follow` the subscription
        (without it, events come only through `consume`: benchmarks, replays)."""
        self.applied_seq = await self.db.read(index.cursor, SERVICE)
        self._tasks = [asyncio.create_task(self._write_changes(), name="appview-index-writer")]
        if follow:
            self._tasks.append(asyncio.create_task(self._read_stream(), name="appview-firehose"))
        self.identities.start()
        self.backfill.start()
        for did in await self.db.read(index.desynchronized):
            self.backfill.request(did)

    async def close(self) -> None:
        await self.backfill.close()
        await self.identities.close()
        await cancel_and_wait(self._tasks)

    def idle(self, seq: int) -> bool:
        """Everything up to `seq` is applied and no backfill is in progress."""
        return (self.applied_seq or 0) >= seq and not self.backfill.active

    async def _fetch_repo(self, did: str) -> Export:
        self.identities.see(did)
        return await fetch_repo(did, self.resolver, self.http, self.catalog, trust=self.trust_relay)

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Until `predicate()` holds after some write (tests, write-to-visible waits)."""
        async with self._applied:
            await self._applied.wait_for(predicate)

    def _queue(self, changes: list[Change], seq: int | None = None) -> None:
        self._pending.extend(changes)
        if seq is not None:
            self._pending_seq = seq
        self._wake.set()

    async def _read_stream(self) -> None:
        failures = 0
        url = self.provider + SUBSCRIBE
        while True:
            # A new index starts from the oldest event the relay still holds.
            resumed = self._pending_seq if self._pending_seq is not None else self.applied_seq
            params = {"cursor": resumed or 0}
            received = self.received
            try:
                await self.consume(subscribe(url, params))
            except (OSError, TimeoutError, WebSocketException, StreamError, DecodeError) as exc:
                log.warning("firehose %s: %r; reconnecting", url, exc)
            failures = 1 if self.received > received else failures + 1
            delay = min(BACKOFF_MAX, self.backoff_base * 2 ** min(failures, 8))
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))

    async def consume(self, events: AsyncIterable[object]) -> None:
        """Queue the changes of each event for the writer, in order, with its seq."""
        async for event in events:
            self.received += 1
            seq = getattr(event, "seq", None)
            if not isinstance(seq, int):
                continue
            changes = await self.changes_for(event)
            # A repo being backfilled keeps its events until its export is in.
            self._queue([c for c in changes if not self._held(c)], seq)
            if len(self._pending) > MAX_PENDING:
                self._drained.clear()
                await self._drained.wait()
            elif self.received % YIELD_EVERY == 0 or (
                not self._writing and len(self._pending) >= BATCH
            ):
                await asyncio.sleep(0)

    def _held(self, change: Change) -> bool:
        return isinstance(change, RepoCommit | RepoSync) and self.backfill.hold(change.did, change)

    async def changes_for(self, event: object) -> list[Change]:
        """What one firehose event changes in the index (nothing for a bad commit)."""
        resolver = None if self.trust_relay else self.resolver
        if isinstance(event, CommitEvent):
            self.identities.see(event.repo)
            try:
                return [await commits.commit_changes(event, resolver, self.catalog, now_iso())]
            except commits.Unverified as exc:
                self.unverified += 1
                log.info("not indexing commit %s of %s: %s", event.rev, event.repo, exc)
                return []
        if isinstance(event, SyncEvent):
            try:
                return [await commits.sync_change(event, resolver)]
            except commits.Unverified as exc:
                self.unverified += 1
                log.info("ignoring #sync %s of %s: %s", event.rev, event.did, exc)
                return []
        if isinstance(event, IdentityEvent):
            self.identities.refresh(event.did)
        elif isinstance(event, AccountEvent):
            status = None if event.active else (event.status or "deactivated")
            return [SetStatus(event.did, status, now_iso())]
        return []

    async def _write_changes(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._pending = self._pending, []
            seq = self._pending_seq
            self._drained.set()
            if seq is None:
                seq = self.applied_seq if self.applied_seq is not None else 0
            self._writing = True
            try:
                desynchronized = await self.db.write(index.apply, batch, SERVICE, seq)
            except self.db.errors:
                # Nothing of the batch was applied (one transaction): keep it and try again.
                log.exception("index write failed; retrying")
                self._pending[:0] = batch
                self._wake.set()
                await asyncio.sleep(WRITE_RETRY)
                continue
            finally:
                self._writing = False
            for change in batch:
                if isinstance(change, Backfilled):
                    self.backfill.written(change.did)
            for did in desynchronized:
                self.backfill.request(did)
            async with self._applied:
                self.applied_seq = seq
                self._applied.notify_all()

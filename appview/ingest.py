"""Indexing the relay's firehose (spec-sync.md, "Firehose"; DESIGN.md, "Nothing lost").

One subscription to BSKY_REPO_PROVIDER's com.atproto.sync.subscribeRepos, resumed from the
cursor saved with the index. Each event is read and turned into changes: a #commit's checks
(the CAR, the signature with its DID's cached key, the inversion) and its records' decoding and
lexicon validation run in worker processes (runtime.workers.Pool, BSKY_INDEX_WORKERS), up to
AHEAD events ahead of the oldest unfinished one; everything else, and a commit whose key has
rotated or whose worker died, on the event loop (`changes_for`). Changes are queued in the
order the events were read; a writer task applies everything queued since its last write in one
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
from collections import deque
from collections.abc import AsyncIterable, Callable
from typing import Final, TypeAlias

import httpx
from websockets.exceptions import WebSocketException

from appview import commits
from appview.backfill import Backfill
from appview.changes import Backfilled, Change, RepoCommit, RepoSync, SetStatus
from appview.db import Database, index
from appview.identities import Identities
from appview.repo_export import Export, fetch_repo
from atcore.errors import DecodeError, IdentityError, InvalidSyntax
from atcore.frames import AccountEvent, CommitEvent, IdentityEvent, SyncEvent, commit_to_wire
from atcore.identity.resolver import IdentityResolver
from atcore.lexicon import Catalog
from atcore.syntax.datetime import now_iso
from atcore.tasks import cancel_and_wait
from atcore.xrpc.stream import StreamError, subscribe
from runtime.workers import Pool, WorkerFailed

log = logging.getLogger(__name__)

# What an event read ahead becomes: its changes, or a worker's answer still to come.
Work: TypeAlias = "list[Change] | asyncio.Future[RepoCommit | commits.Unverified]"

SUBSCRIBE: Final = "/xrpc/com.atproto.sync.subscribeRepos"
SERVICE: Final = "repos"
# Changes queued beyond this make the reader wait for the writer (bounded memory).
MAX_PENDING: Final = 50_000
# Reading and verifying events rarely waits, so the reader gives the loop a turn this often
# (the writer takes its next batch, read requests run), and as soon as the writer is free and
# this many changes are queued (the reader and the writer's transaction then overlap).
YIELD_EVERY: Final = 64
BATCH: Final = 500
# Events read ahead of the oldest one whose changes are not queued yet: enough to keep every
# worker busy with full batches.
AHEAD: Final = 1024
# The workers take what the serving process leaves of the cores: reads are served first.
WORKER_NICENESS: Final = 10
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
        workers: int = 0,
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
        self._pool: Pool[RepoCommit | commits.Unverified] = Pool(
            commits.changes_batch, workers, WORKER_NICENESS
        )
        self._ahead: deque[tuple[int, object, Work]] = deque()
        self._more = asyncio.Event()  # an event was read
        self._room = asyncio.Event()  # fewer than AHEAD events wait to be settled
        self._settled = asyncio.Event()  # every event read is settled
        self._settled.set()

    async def start(self, follow: bool = True) -> None:
        """Start the index writer and handle resolution, and with `follow` the subscription
        (without it, events come only through `consume`: benchmarks, replays)."""
        self.applied_seq = await self.db.read(index.cursor, SERVICE)
        self._tasks = [
            asyncio.create_task(self._write_changes(), name="appview-index-writer"),
            asyncio.create_task(self._settle(), name="appview-index-settler"),
        ]
        if follow:
            self._tasks.append(asyncio.create_task(self._read_stream(), name="appview-firehose"))
        self.identities.start()
        self.backfill.start()
        for did in await self.db.read(index.desynchronized):
            self.backfill.request(did)

    async def ready(self) -> None:
        """Until the workers have started (benchmarks: their start is not timed)."""
        await self._pool.ready()

    async def close(self) -> None:
        await self.backfill.close()
        await self.identities.close()
        await cancel_and_wait(self._tasks)
        await self._pool.close()

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
            # Everything read before a failure is queued before resuming after it.
            await self._settled.wait()
            # A new index starts from the oldest event the relay still holds.
            resumed = self._pending_seq if self._pending_seq is not None else self.applied_seq
            params = {"cursor": resumed or 0}
            received = self.received
            try:
                await self.consume(subscribe(url, params, trusted=self.trust_relay))
            except (OSError, TimeoutError, WebSocketException, StreamError, DecodeError) as exc:
                log.warning("firehose %s: %r; reconnecting", url, exc)
            failures = 1 if self.received > received else failures + 1
            delay = min(BACKOFF_MAX, self.backoff_base * 2 ** min(failures, 8))
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))

    async def consume(self, events: AsyncIterable[object]) -> None:
        """Hand each event to the settling task, in order; returns once the changes of every
        event read are queued for the writer."""
        self._settled.clear()
        async for event in events:
            self.received += 1
            seq = getattr(event, "seq", None)
            if not isinstance(seq, int):
                continue
            self._ahead.append((seq, event, await self._start(event)))
            self._settled.clear()
            self._more.set()
            if len(self._ahead) >= AHEAD:
                self._room.clear()
                await self._room.wait()
            if len(self._pending) > MAX_PENDING:
                self._drained.clear()
                await self._drained.wait()
            elif self.received % YIELD_EVERY == 0 or (
                not self._writing and len(self._pending) >= BATCH
            ):
                await asyncio.sleep(0)
        await self._settled.wait()

    async def _start(self, event: object) -> Work:
        """A #commit's checks and records go to a worker (with its DID's key, unless the relay
        is trusted); everything else is done here."""
        if isinstance(event, CommitEvent) and not event.too_big:
            self.identities.see(event.repo)
            key = None
            if not self.trust_relay:
                try:
                    doc = await self.resolver.resolve_did(event.repo)
                except (IdentityError, InvalidSyntax):
                    return await self.changes_for(event)
                if doc.signing_key is None:
                    return await self.changes_for(event)
                key = (doc.signing_key.curve, doc.signing_key.compressed())
            job = self._pool.submit((commit_to_wire(event), key, now_iso()))
            if job is not None:
                return job
        return await self.changes_for(event)

    async def _settle(self) -> None:
        """Queue the changes of the events read, oldest first, each once its work is done."""
        ahead = self._ahead
        while True:
            if not ahead:
                self._settled.set()
                self._more.clear()
                await self._more.wait()
                continue
            seq, event, work = ahead[0]
            if not isinstance(work, list):
                work = await self._answer(event, work)
            ahead.popleft()
            # A repo being backfilled keeps its events until its export is in.
            self._queue([c for c in work if not self._held(c)], seq)
            if len(ahead) < AHEAD:
                self._room.set()

    async def _answer(
        self, event: object, work: asyncio.Future[RepoCommit | commits.Unverified]
    ) -> list[Change]:
        try:
            result = await work
        except WorkerFailed:
            return await self.changes_for(event)
        if isinstance(result, commits.WrongKey):
            return await self.changes_for(event)  # the key may have rotated: refresh it
        if isinstance(result, commits.Unverified):
            assert isinstance(event, CommitEvent)
            self.unverified += 1
            log.info("not indexing commit %s of %s: %s", event.rev, event.repo, result)
            return []
        return [result]

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

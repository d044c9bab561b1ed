"""Bringing desynchronized repos back (spec-sync.md, "Reliable Repository Synchronization").

relay.ingest reports a repo whose chain broke; this queue fetches and verifies its whole repo
(relay.resync), then persists the new state with the repo's collections and emits the `#sync`
in one transaction, after which the repo's events flow again. A failed resync is counted and
retried with growing delays, a few times, until the next chain break asks again.
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial
from typing import Final

import httpx

from atcore.tasks import cancel_and_wait
from relay.db import Database, accounts
from relay.db.hosts import HostRow
from relay.ingest import REJECTED
from relay.metrics import Metrics
from relay.repostate import DESYNCHRONIZED, Reason, Rejected
from relay.resync import resync_repo
from relay.validate import Resolver
from relay.writer import Change, Writer

log = logging.getLogger(__name__)

RESYNCS: Final = "relay_resyncs_total"
WORKERS: Final = 2


class Resyncer:
    def __init__(
        self,
        db: Database,
        writer: Writer,
        resolver: Resolver,
        http: httpx.AsyncClient,
        metrics: Metrics,
        *,
        attempts: int = 3,
        retry_delay: float = 5.0,
    ) -> None:
        self.db = db
        self.writer = writer
        self.resolver = resolver
        self.http = http
        self.metrics = metrics
        self.attempts = attempts
        self.retry_delay = retry_delay
        self._queue: asyncio.Queue[tuple[str, HostRow]] = asyncio.Queue()
        self._queued: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []
        metrics.declare(RESYNCS, "Repo resynchronisations from getRepo, by outcome")

    def start(self) -> None:
        for n in range(WORKERS):
            self._tasks.append(asyncio.create_task(self._work(), name=f"resync-{n}"))

    async def close(self) -> None:
        await cancel_and_wait(self._tasks)
        self._tasks.clear()

    def request(self, did: str, host: HostRow) -> None:
        """Queue `did` for a resync unless it already waits."""
        if did not in self._queued:
            self._queued.add(did)
            self._queue.put_nowait((did, host))

    async def _work(self) -> None:
        while True:
            did, host = await self._queue.get()
            try:
                await self._resync(did, host)
            except Exception:  # one repo's failure never stops the queue
                log.exception("resync of %s failed", did)
            finally:
                self._queued.discard(did)

    async def _resync(self, did: str, host: HostRow) -> None:
        for attempt in range(1, self.attempts + 1):
            # Through the log's writer: ingest may have queued the desync a moment ago.
            account = await self.writer.run(partial(accounts.get, did=did))
            if account is None or account.state.status != DESYNCHRONIZED or account.takedown:
                return
            try:
                done = await resync_repo(did, account.state, self.resolver, self.http)
            except Rejected as exc:
                self.metrics.inc(RESYNCS, outcome="failed")
                self.metrics.inc(REJECTED, reason=str(Reason.RESYNC_FAILED))
                log.warning("resync of %s failed (%s): %s", did, exc.reason, exc.detail)
                await asyncio.sleep(self.retry_delay * attempt)
                continue
            change = Change(
                host.id,
                state=done.state,
                event=done.event,
                collections=tuple(sorted(done.collections)),
                replace_collections=True,
            )
            await self.writer.commit(change)
            self.metrics.inc(RESYNCS, outcome="ok")
            log.info("resynchronised %s at rev %s (%d records)", did, done.state.rev, done.records)
            return

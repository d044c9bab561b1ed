"""Deleting uploaded blobs no record took up in time (guide-blob-lifecycle.md, "temporary").

An upload stays temporary until a record references it (pds.actor_store.sql); the reference
PDS deletes temporary blobs after an hour. The sweeper runs every `every` seconds from the app's
lifespan. Its first pass visits every account on disk (uploads from before a restart); later
passes visit only accounts that uploaded since, or still had young uploads waiting, so a
large, quiet PDS opens no stores for it. Uploads read the time from the sweeper's clock, which
tests replace.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from atcore.cid import CID
from atcore.tasks import cancel_and_wait
from pds.actor_store import ActorStores, RepoMissing
from pds.actor_store.store import Txn

log = logging.getLogger("pds.blob_sweep")


def _utc_now() -> datetime:
    return datetime.now(UTC)


class BlobSweeper:
    def __init__(
        self,
        actors: ActorStores,
        grace: timedelta,
        every: float,
        now: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.actors = actors
        self.grace = grace
        self.every = every
        self.now = now
        self._pending: set[str] = set()
        self._swept_all = False
        self._task: asyncio.Task[None] | None = None

    def uploaded(self, did: str) -> None:
        """Note an upload, so the next pass looks at this account."""
        self._pending.add(did)

    async def sweep(self) -> int:
        """One pass: delete the temporary blobs older than the grace period; returns how many."""
        cutoff = (self.now() - self.grace).isoformat()
        if self._swept_all:
            dids = sorted(self._pending)
        else:
            loop = asyncio.get_running_loop()
            dids = await loop.run_in_executor(None, lambda: list(self.actors.dids()))
            self._swept_all = True
        self._pending.difference_update(dids)
        deleted = 0
        for did in dids:
            try:
                deleted += await self._sweep_account(did, cutoff)
            except RepoMissing:
                continue
        return deleted

    async def _sweep_account(self, did: str, cutoff: str) -> int:
        store = await self.actors.open(did)

        def drop(txn: Txn) -> tuple[list[CID], bool]:
            return txn.sql.drop_stale_uploads(cutoff), txn.sql.has_pending_uploads()

        dropped, waiting = await store.transact(drop)
        self.actors.blobs.delete(did, dropped)
        if waiting:
            self._pending.add(did)
        return len(dropped)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="blob-sweep")

    async def _run(self) -> None:
        while True:
            try:
                if count := await self.sweep():
                    log.info("deleted %d unreferenced upload(s)", count)
            except Exception:  # the next pass tries again; the server keeps serving
                log.exception("blob sweep failed")
            await asyncio.sleep(self.every)

    async def close(self) -> None:
        await cancel_and_wait([self._task])

"""Backfilling repos from their exports (spec-sync.md, "Record-Level Synchronization").

In the running appview (`Backfill`): a repo the index marks desynchronized (first seen
mid-stream, a #sync to a head we do not have, a broken `since` chain: appview.db.index) is
fetched by a bounded pool of workers; while it is in progress its live #commit and #sync
events are held in memory, and once its export is fetched they are queued behind it, so the
writer applies the export, then the held events in order, the rev check dropping those the
export already covers. Nothing is lost to a crash: the repo stays desynchronized in the store
until the export is written, and is fetched again at the next start.

`skyloft appview backfill [--did D | --host H]` (`run`): the repos named (a DID, every repo a
host lists, or by default every desynchronized repo of the index) are fetched and written with
bounded concurrency and a progress bar; a repo the host lists as inactive gets its status
(hidden, as an #account event hides it) and no fetch.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Final

import httpx

from appview import identities
from appview.changes import Change, SetStatus
from appview.config import AppviewConfig
from appview.db import Database, index, open_database
from appview.repo_export import Export, ExportFailed, fetch_repo, list_repos
from atcore.identity.netguard import AddressGuard
from atcore.identity.pinned import guarded_client
from atcore.lexicon import Catalog
from atcore.syntax.datetime import now_iso
from atcore.tasks import cancel_and_wait
from runtime.progress import Progress

log = logging.getLogger(__name__)

WORKERS: Final = 4
# A failed repo is tried again on its next event, not before this (doubling up to the max).
RETRY_AFTER: Final = 30.0
RETRY_MAX: Final = 3600.0
MAX_FAILED: Final = 100_000
# Live changes held per repo in progress; past this they are dropped, and the `since` check
# desynchronizes the repo again on the first commit after the export (a second backfill).
MAX_HELD: Final = 10_000

Fetch = Callable[[str], Awaitable[Export]]


class Backfill:
    """The appview's backfill workers and the live changes held for repos in progress."""

    def __init__(
        self,
        fetch: Fetch,
        queue: Callable[[list[Change]], None],
        *,
        workers: int = WORKERS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._queue = queue
        self._workers = workers
        self._clock = clock
        # In progress: the repo's live changes held until its export is written.
        self.active: dict[str, list[Change]] = {}
        self._failed: dict[str, tuple[float, float]] = {}  # did -> (retry at, last delay)
        self._todo: asyncio.Queue[str] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self.fetched = 0
        self.failures = 0

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._work(), name="appview-backfill") for _ in range(self._workers)
        ]

    async def close(self) -> None:
        await cancel_and_wait(self._tasks)

    def request(self, did: str) -> None:
        """The store marks `did` desynchronized: fetch its export (once at a time)."""
        if did in self.active:
            return
        failed = self._failed.get(did)
        if failed is not None and self._clock() < failed[0]:
            return
        self.active[did] = []
        self._todo.put_nowait(did)

    def hold(self, did: str, change: Change) -> bool:
        """Keep a live change of a repo in progress for after its export; False if none is."""
        held = self.active.get(did)
        if held is None:
            return False
        if len(held) >= MAX_HELD:
            held.clear()
        held.append(change)
        return True

    def written(self, did: str) -> None:
        """The writer applied `did`'s export: what arrived for it since is queued behind."""
        held = self.active.pop(did, None)
        if held:
            self._queue(held)

    async def _work(self) -> None:
        while True:
            did = await self._todo.get()
            try:
                export = await self._fetch(did)
            except ExportFailed as exc:
                log.warning("backfill of %s failed: %s", did, exc)
                self.failures += 1
                self._fail(did)
                continue
            except Exception:
                # A worker must outlive any one repo, or the repo's events stay held forever.
                log.exception("backfill of %s failed", did)
                self.failures += 1
                self._fail(did)
                continue
            self.fetched += 1
            self._failed.pop(did, None)
            held, self.active[did] = self.active[did], []
            self._queue([export.repo, *held])

    def _fail(self, did: str) -> None:
        # The held changes go: the repo stays desynchronized and its next export covers them.
        del self.active[did]
        delay = min(RETRY_MAX, 2 * self._failed.get(did, (0.0, RETRY_AFTER / 2))[1])
        self._failed[did] = (self._clock() + delay, delay)
        if len(self._failed) > MAX_FAILED:
            del self._failed[next(iter(self._failed))]
        self._queue([])  # wakes the writer, so waiters see the repo is no longer in progress


async def run(
    config: AppviewConfig, did: str | None, host: str | None, workers: int = WORKERS
) -> int:
    """`skyloft appview backfill`: the exit status (1 when some repo failed)."""
    db = open_database(config)
    await db.open()
    guarded = guarded_client(AddressGuard(allow_private=config.dev_mode))
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            resolver = identities.resolver(config, http, guarded)
            catalog = Catalog.load_builtin()

            async def fetch(repo: str) -> tuple[Export, list[Change]]:
                export = await fetch_repo(
                    repo, resolver, guarded, catalog, trust=config.trust_relay
                )
                handle = await identities.handle_change(resolver, repo)
                return export, [export.repo] if handle is None else [export.repo, handle]

            if did is not None:
                dids = [did]
            elif host is not None:
                dids = await _host_repos(db, host.rstrip("/"), guarded)
            else:
                dids = await db.read(index.desynchronized)
            failed = await backfill_repos(db, dids, fetch, workers)
    except ExportFailed as exc:
        log.error("%s", exc)
        return 1
    finally:
        await guarded.aclose()
        await db.close()
    return 1 if failed else 0


async def _host_repos(db: Database, host: str, http: httpx.AsyncClient) -> list[str]:
    """The active repos `host` lists; the others' status is recorded, which hides them."""
    if "://" not in host:
        host = f"https://{host}"
    active, inactive = [], []
    async for repo in list_repos(host, http):
        if repo.active:
            active.append(repo.did)
        else:
            inactive.append(SetStatus(repo.did, repo.status or "deactivated", now_iso()))
    if inactive:
        await db.write(index.apply, inactive, "", None)
    return active


async def backfill_repos(
    db: Database,
    dids: Iterable[str],
    fetch: Callable[[str], Awaitable[tuple[Export, list[Change]]]],
    workers: int,
) -> int:
    """Fetch and write each repo's export (with its handle), `workers` at a time; the number
    that failed."""
    todo = list(dict.fromkeys(dids))
    progress = Progress("repos", len(todo))
    pending = iter(todo)
    failed = 0

    async def worker() -> None:
        nonlocal failed
        for did in pending:
            size = 0
            try:
                export, changes = await fetch(did)
            except ExportFailed as exc:
                log.warning("backfill of %s failed: %s", did, exc)
                failed += 1
            except Exception:
                log.exception("backfill of %s failed", did)
                failed += 1
            else:
                await db.write(index.apply, changes, "", None)
                size = export.size
            progress.add(1, size)

    await asyncio.gather(*(worker() for _ in range(workers)))
    progress.close()
    return failed

"""From a subscription to the store: every event through the feed's function into a batch, and
batches written with the position they reach (bskydocs-starter-custom-feeds.md, "Overview").

The reader puts events on a bounded queue (a slow disk slows the socket instead of filling
memory); the writer takes whatever has queued up, up to MAX_BATCH changes, and writes it with
the position of its last event in one transaction. So the stored cursor always names the last
event whose effects are stored: after a crash or restart the source resumes right after it,
and nothing is lost or applied twice.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Final

from feedgen.changes import (
    AccountGone,
    AccountStatus,
    Change,
    Deleted,
    Event,
    Source,
    subject_of,
)
from feedgen.sdk import Feed, Record
from feedgen.store import Batch, FeedStore, Item

log = logging.getLogger(__name__)

MAX_BATCH: Final = 5_000
QUEUE_EVENTS: Final = 10_000
MAX_BACKOFF: Final = 30.0


@dataclass
class IndexerStats:
    events: int = 0
    stored: int = 0
    position: int | None = None
    connected: bool = False


def to_batch(feed: Feed, changes: list[Change], batch: Batch) -> None:
    """Add what `changes` mean for `feed` to `batch`: the feed's function decides each record."""
    for change in changes:
        if isinstance(change, Record):
            item = _item(feed, change)
            if item is None:  # an update may stop matching: it leaves the feed
                batch.deletes.append(change.uri)
            else:
                batch.puts.append(item)
        elif isinstance(change, Deleted):
            batch.deletes.append(change.uri)
        elif isinstance(change, AccountStatus):
            batch.statuses.append((change.did, change.active))
        elif isinstance(change, AccountGone):
            batch.accounts_gone.append(change.did)


def _item(feed: Feed, record: Record) -> Item | None:
    subject = subject_of(record.value)
    if record.collection == feed.collection and feed.selector is not None:
        try:
            rank = feed.selector(record)
        except Exception:  # a bug in the feed's function skips the record, not the stream
            log.exception("the feed function failed on %s", record.uri)
            rank = None
        if rank is not None:
            return Item(record.uri, record.did, record.collection, subject, rank, True)
    if record.collection in feed.kept:
        return Item(record.uri, record.did, record.collection, subject, record.time_us, False)
    return None


class Indexer:
    """Runs the subscription (reconnecting with backoff) and the writer until closed."""

    def __init__(
        self, feed: Feed, source: Source, store: FeedStore, *, backoff_base: float = 1.0
    ) -> None:
        self.feed = feed
        self.source = source
        self.store = store
        self.stats = IndexerStats()
        self._queue: asyncio.Queue[Event] = asyncio.Queue(QUEUE_EVENTS)
        self._backoff_base = backoff_base
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self.stats.position = await self.store.position()
        self._tasks = [
            asyncio.create_task(self._read(), name="feedgen-read"),
            asyncio.create_task(self._write(), name="feedgen-write"),
        ]

    async def close(self) -> None:
        """Stop reading, store what was read, stop writing."""
        self._tasks[0].cancel()
        await asyncio.gather(self._tasks[0], return_exceptions=True)
        # A writer that failed will not drain the queue: what it holds is read again on restart.
        drained = asyncio.ensure_future(self._queue.join())
        await asyncio.wait((drained, self._tasks[1]), return_when=asyncio.FIRST_COMPLETED)
        drained.cancel()
        self._tasks[1].cancel()
        await asyncio.gather(self._tasks[1], return_exceptions=True)

    async def _read(self) -> None:
        delay = self._backoff_base
        resume = self.stats.position
        while True:
            try:
                async for event in self.source.events(resume):
                    self.stats.connected = True
                    delay = self._backoff_base
                    resume = event.position
                    await self._queue.put(event)
            except (OSError, ConnectionError, ValueError, TimeoutError) as exc:
                log.warning("%s subscription ended: %s", self.source.name, exc)
            except Exception:  # a bug must not stop the feed silently: say so, and go on
                log.exception("%s subscription failed", self.source.name)
            self.stats.connected = False
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF)

    async def _write(self) -> None:
        while True:
            events = [await self._queue.get()]
            batch = Batch([], [], [])
            to_batch(self.feed, list(events[0].changes), batch)
            while len(batch) < MAX_BATCH and not self._queue.empty():
                event = self._queue.get_nowait()
                events.append(event)
                to_batch(self.feed, list(event.changes), batch)
            batch.position = events[-1].position
            try:
                await self.store.write(batch)
            except Exception:
                log.exception(
                    "storing a batch failed; restart to resume at %s", self.stats.position
                )
                raise
            finally:
                for _ in events:
                    self._queue.task_done()
            self.stats.events += len(events)
            self.stats.stored += len(batch.puts)
            self.stats.position = batch.position

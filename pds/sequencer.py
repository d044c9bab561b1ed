"""The PDS firehose: append-only event log and bounded fan-out (spec-event-stream.md, spec-sync.md).

Appends are group-committed: events queue up while the previous batch is being written, and one
worker-thread call assigns their seqs, encodes each frame once and inserts the batch. Repo
commits skip the queue: the actor store's worker thread logs a commit's events right after its
transaction (`log_sync`), so a write costs one worker-thread hop. Either way the frames are
handed to subscribers, in seq order, only once the log transaction is committed, and before
the writer's await returns, so nobody sees an event that is not durable. The log is in WAL mode
with synchronous=NORMAL: a committed append survives a process crash (kill -9); an OS crash or
power cut may lose the last appends, the same window as the actor stores (DESIGN.md).
Each subscriber has a bounded buffer; a live subscriber whose buffer fills is dropped with
`ConsumerTooSlow` without slowing the others.

Repo commits reach the log through their account's outbox (see pds.repo_writer); `start`
sequences any outbox rows a crash left behind before serving anyone.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from atcore.eventlog import EventLog
from atcore.frames import (
    AccountEvent,
    CommitEvent,
    IdentityEvent,
    SyncEvent,
    decode_frame,
    encode_frame,
)
from atcore.syntax.datetime import now_iso
from atcore.tasks import cancel_and_wait
from pds.actor_store import ActorStores
from pds.actor_store.store import Txn
from pds.sequencer_db import LogRow, SequencerDb

log = logging.getLogger("pds.sequencer")

RETENTION_SECONDS = 72 * 3600
TRIM_INTERVAL_SECONDS = 600.0
SUBSCRIBER_BUFFER = 1000
REPLAY_PAGE = 500

SeqEvent = CommitEvent | SyncEvent | IdentityEvent | AccountEvent
P = ParamSpec("P")
T = TypeVar("T")


def _clear_outbox(txn: Txn, upto: int) -> None:
    txn.sql.clear_outbox(upto)


@dataclass
class _Pending:
    did: str
    kind: str
    rev: str | None
    event: SeqEvent
    done: asyncio.Future[int]


class Sequencer:
    """The event log of `<data_dir>/sequencer.sqlite` and its live subscribers."""

    def __init__(
        self,
        data_dir: Path,
        actors: ActorStores,
        retention_seconds: float = RETENTION_SECONDS,
        trim_interval: float = TRIM_INTERVAL_SECONDS,
        subscriber_buffer: int = SUBSCRIBER_BUFFER,
    ) -> None:
        self.path = data_dir / "sequencer.sqlite"
        self.actors = actors
        self.retention_seconds = retention_seconds
        self.trim_interval = trim_interval
        self.subscriber_buffer = subscriber_buffer
        # One thread writes; replays read on their own connection so they never delay appends.
        self._writer_thread = ThreadPoolExecutor(1, thread_name_prefix="sequencer-write")
        self._reader_thread = ThreadPoolExecutor(1, thread_name_prefix="sequencer-read")
        self._db: SequencerDb | None = None
        self._reader: SequencerDb | None = None
        self._pending: list[_Pending] = []
        self._wake = asyncio.Event()
        self.fanout = EventLog(
            self._read_after, self._oldest, buffer=subscriber_buffer, page=REPLAY_PAGE
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._outbox_writes = 0
        # Guards the log's write connection: the sequencer thread and actor-store worker
        # threads (log_sync) append through it.
        self._db_lock = threading.RLock()
        self._last_seq = 0  # the log's highest seq, read at start; kept under _db_lock
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- life cycle --
    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._loop = asyncio.get_running_loop()
        db = self._db = await self._write(SequencerDb, self.path)
        self._reader = await self._read(SequencerDb, self.path)
        self.fanout.head = self._last_seq = await self._write(db.head)
        clean = await self._write(db.get_meta, "clean_shutdown")
        await self._write(db.set_meta, "clean_shutdown", "0")
        self._tasks.append(asyncio.create_task(self._writer(), name="sequencer-writer"))
        if clean != "1":
            await self.recover()
        self._tasks.append(asyncio.create_task(self._trimmer(), name="sequencer-trim"))

    async def close(self) -> None:
        self.fanout.close()
        await cancel_and_wait(self._tasks)
        self._tasks.clear()
        if self._db is not None:
            # Clean only when no commit sits in an outbox without its log entry.
            if not self._pending and self._outbox_writes == 0:
                await self._write(self._db.set_meta, "clean_shutdown", "1")
            await self._write(self._db.close)
            self._db = None
        if self._reader is not None:
            await self._read(self._reader.close)
            self._reader = None
        self._writer_thread.shutdown(wait=True)
        self._reader_thread.shutdown(wait=True)

    @contextlib.contextmanager
    def outbox_write(self) -> Iterator[None]:
        """Wrap an account commit from its outbox insert to its append (clean-shutdown guard)."""
        self._outbox_writes += 1
        try:
            yield
        finally:
            self._outbox_writes -= 1

    async def recover(self) -> int:
        """Sequence every outbox row not yet in the log (after a crash); returns how many."""
        db = self._require(self._db)
        count = 0
        for did in list(self.actors.dids()):
            store = await self.actors.open(did)
            async with self.actors.lock(did):
                rows = await store.read(lambda sql: sql.outbox())
                for _, kind, rev, frame in rows:
                    if await self._write(db.has_event, did, kind, rev):
                        continue
                    event = decode_frame(frame)
                    if not isinstance(event, CommitEvent | SyncEvent):
                        raise RuntimeError(f"outbox of {did} holds a {type(event).__name__}")
                    await self.append(did, kind, rev, event)
                    count += 1
                if rows:
                    await store.transact(functools.partial(_clear_outbox, upto=rows[-1][0]))
        if count:
            log.warning("sequenced %d event(s) left in account outboxes by a crash", count)
        return count

    # -- appending --
    async def append(self, did: str, kind: str, rev: str | None, event: SeqEvent) -> int:
        """Add an event (its `seq` is assigned here); returns the seq once it is durable."""
        if self._db is None:
            raise RuntimeError("the sequencer is not started")
        pending = _Pending(did, kind, rev, event, asyncio.get_running_loop().create_future())
        self._pending.append(pending)
        self._wake.set()
        return await pending.done

    async def emit_identity(self, did: str, handle: str | None) -> int:
        return await self.append(did, "identity", None, IdentityEvent(0, did, now_iso(), handle))

    async def emit_account(self, did: str, active: bool, status: str | None) -> int:
        event = AccountEvent(0, did, now_iso(), active, None if active else status)
        return await self.append(did, "account", None, event)

    async def emit_sync(self, did: str, rev: str, blocks_car: bytes) -> int:
        """A `#sync` event; `blocks_car` is a CAR rooted at the commit of `rev`, holding it."""
        return await self.append(did, "sync", rev, SyncEvent(0, did, blocks_car, rev, now_iso()))

    async def _writer(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._pending = self._pending, []
            if not batch:
                continue
            try:
                items = [(p.did, p.kind, p.rev, p.event) for p in batch]
                rows = await self._write(self._log, items)
            except Exception as exc:  # the callers learn of it; the writer keeps serving
                log.exception("event log append failed")
                for p in batch:
                    p.done.set_exception(exc)
                continue
            for p, row in zip(batch, rows, strict=True):
                if not p.done.done():
                    p.done.set_result(row.seq)

    def log_sync(self, did: str, events: Sequence[tuple[str, str | None, SeqEvent]]) -> list[int]:
        """Append one account's (kind, rev, event)s from a worker thread; returns their seqs.

        The events are those whose frames the caller's transaction just put in the account's
        outbox, checked by encode_frame then: here only their seq changes, so they are encoded
        without checking them again. Durable on return; the frames reach subscribers through
        the event loop, queued before the caller's own completion, so a writer is answered only
        after the fan-out has them.
        """
        items = [(did, kind, rev, event) for kind, rev, event in events]
        return [row.seq for row in self._log(items, checked=True)]

    def _log(
        self, items: Sequence[tuple[str, str, str | None, SeqEvent]], checked: bool = False
    ) -> list[LogRow]:
        loop = self._loop
        if loop is None:
            raise RuntimeError("the sequencer is not started")
        with self._db_lock:
            db = self._require(self._db)
            seq = self._last_seq
            now_ms = int(time.time() * 1000)
            rows = []
            for did, kind, rev, event in items:
                seq += 1
                frame = encode_frame(event, seq=seq, check=not checked)
                rows.append(LogRow(seq, did, kind, rev, frame, now_ms))
            db.append(rows)
            self._last_seq = seq
            # Scheduled under the lock: the fan-out receives batches in seq order.
            loop.call_soon_threadsafe(self._publish, rows)
        return rows

    def _publish(self, rows: list[LogRow]) -> None:
        for row in rows:
            self.fanout.publish(row.seq, row.frame)

    @property
    def head(self) -> int:
        """The highest seq that is durable and handed to the fan-out."""
        return self.fanout.head

    # -- subscribing --
    def subscribe(self, cursor: int | None) -> AsyncIterator[bytes]:
        """Frames for one subscriber: replay after `cursor`, then live (atcore.eventlog)."""
        return self.fanout.subscribe(cursor)

    def subscribe_batches(self, cursor: int | None) -> AsyncIterator[list[bytes]]:
        """The same frames in runs of whatever is ready (for sending them at once)."""
        return self.fanout.subscribe_batches(cursor)

    async def _read_after(self, seq: int, limit: int) -> list[tuple[int, bytes]]:
        return await self._read(self._require(self._reader).frames_after, seq, limit)

    async def _oldest(self) -> int | None:
        return await self._read(self._require(self._reader).oldest)

    # -- housekeeping --
    async def _trimmer(self) -> None:
        while True:
            await asyncio.sleep(self.trim_interval)
            try:
                await self.trim()
            except Exception:  # a failed trim is retried next round
                log.exception("event log trim failed")

    async def trim(self) -> int:
        """Drop events older than the retention window; returns how many were dropped."""
        cutoff = int((time.time() - self.retention_seconds) * 1000)
        return await self._write(self._require(self._db).trim, cutoff)

    @staticmethod
    def _require(db: SequencerDb | None) -> SequencerDb:
        if db is None:
            raise RuntimeError("the sequencer is not started")
        return db

    async def _write(self, fn: Callable[P, T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._writer_thread, self._locked, fn, *args)

    def _locked(self, fn: Callable[..., T], *args: Any) -> T:
        with self._db_lock:
            return fn(*args)

    async def _read(self, fn: Callable[P, T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._reader_thread, fn, *args)

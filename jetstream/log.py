"""The event log every subscriber reads at its own cursor (blog-jetstream.md, "Cursors").

Each event is keyed by its `time_us`, unique and increasing, so a client's cursor is a
position in the log. The log is one sequence in two parts: SQLite in the data directory holds
every event for JETSTREAM_EVENT_TTL (and at most JETSTREAM_MAX_LOG_BYTES); memory holds the
most recent ones, everything after `memory_floor`, for the subscribers at the live end. An
event goes to memory when it arrives (visible at once), to SQLite in the next batch, and leaves
memory only once it is on disk, so a reader below `memory_floor` finds on disk everything up
to it: moving from disk to memory has no gap and no duplicate by construction.

There is no queue per subscriber: a slow reader only reads later. Only a reader whose position
the log no longer holds (trimmed by age or size) has missed events; `read` then raises
FellBehind, and the server cuts that subscriber off with the reason.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final

from jetstream.events import Entry
from runtime.sqlite import SqliteDatabase

log = logging.getLogger(__name__)

__all__ = ["EventLog", "FellBehind"]

# Live subscribers are woken together, at most once an interval however many events arrived
# in it. Each wake-up costs every waiting subscriber a turn of the loop (~10-20 µs, most of it
# the socket write, whatever the page holds), so the interval grows with their number: 5 ms
# for a few, 10 ms for a thousand (bench/stream.py, quiet 2-core machine, 1,000 consumers of
# 1,000 events/s each: lag p99 62-67 ms and 0.63 µs of CPU per delivery at 10 µs a waiter,
# 81-101 ms and 0.56 µs at 20, 117-137 ms and 0.44 µs at 40), at most 40 ms for many more,
# so that waking them stays a bounded share of a core while the lag stays under 100 ms.
NOTIFY_INTERVAL: Final = 0.005
NOTIFY_PER_WAITER: Final = 0.00001
MAX_NOTIFY_INTERVAL: Final = 0.04
FLUSH_INTERVAL: Final = 0.05
TRIM_INTERVAL: Final = 1.0
# Events not yet on disk: past this, ingest waits for the writer (backpressure upstream).
MAX_UNWRITTEN: Final = 50_000
_ROW_OVERHEAD: Final = 24
# Trim a little below the size bound so that trimming does not run on every batch.
_TRIM_SLACK: Final = 0.9
_COMPACT_AT: Final = 4096

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    time_us INTEGER PRIMARY KEY,
    seq INTEGER NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    did TEXT NOT NULL,
    collection TEXT,
    body BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""
_SIZE = f"length(did) + length(coalesce(collection, '')) + length(body) + {_ROW_OVERHEAD}"


class FellBehind(Exception):
    """The reader's next events were trimmed from the log before it read them."""


def _size(entry: Entry) -> int:
    return len(entry.did) + len(entry.collection or "") + len(entry.body) + _ROW_OVERHEAD


def _seq_of(entry: Entry) -> int:
    return entry.seq


def _write(db: sqlite3.Connection, batch: list[Entry], upstream: int | None) -> None:
    db.executemany(
        "INSERT INTO events (time_us, seq, kind, did, collection, body) VALUES (?, ?, ?, ?, ?, ?)",
        [(e.key, e.seq, e.kind, e.did, e.collection, e.body) for e in batch],
    )
    if upstream is not None:
        _write_meta(db, "upstream", upstream)


def _write_meta(db: sqlite3.Connection, name: str, value: int) -> None:
    db.execute("INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)", (name, value))


def _read_disk(db: sqlite3.Connection, after: int, upto: int, limit: int) -> list[Entry]:
    rows = db.execute(
        "SELECT time_us, kind, did, collection, body, seq FROM events"
        " WHERE time_us > ? AND time_us <= ? ORDER BY time_us LIMIT ?",
        (after, upto, limit),
    ).fetchall()
    return [Entry(*row) for row in rows]


def _key_of_seq(db: sqlite3.Connection, seq: int) -> int | None:
    row = db.execute(
        "SELECT time_us FROM events WHERE seq >= ? ORDER BY seq LIMIT 1", (seq,)
    ).fetchone()
    return None if row is None else int(row[0])


class EventLog:
    def __init__(
        self,
        path: Path,
        *,
        ttl: float,
        max_bytes: int,
        memory_bytes: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._ttl = ttl
        self._max_bytes = max_bytes
        self._memory_bytes = memory_bytes
        self._clock = clock
        self._db = SqliteDatabase(path, self._prepare, "jetstream-log")
        self._keys: list[int] = []
        self._entries: list[Entry] = []
        self._start = 0
        self._held = 0  # bytes of the entries in memory
        self._unwritten: list[Entry] = []
        self._upstream: int | None = None  # relay seq of the newest event handled
        self.head = 0  # key of the newest event
        self.seq = 0  # seq of the newest event
        self.trimmed_seq = 0  # seq of the newest event ever trimmed
        self.persisted = 0  # key of the newest event on disk
        self.memory_floor = 0  # memory holds every event with a key above this
        self.trimmed = 0  # the newest key ever trimmed: a reader below it missed events
        self.disk_bytes = 0
        self.upstream_cursor: int | None = None  # as persisted when the log was opened
        self.marks: dict[str, int] = {}  # positions other readers persisted (set_mark)
        self._waiters: list[asyncio.Future[None]] = []  # one per subscriber in `wait`
        self._notify_pending = False
        self._announced = 0  # the newest key when subscribers were last woken
        self._opened = False
        self._written = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None
        self._closing = False
        self._stop = asyncio.Event()

    # --- life cycle ---

    async def open(self) -> None:
        await self._db.open()
        self._opened = True
        self._announced = self._newest()
        self._flusher = asyncio.create_task(self._flush_loop(), name="jetstream-log-flush")

    def _prepare(self, db: sqlite3.Connection) -> None:
        """The tables, and where the log stood when it was closed (on the writer's thread)."""
        db.executescript(_SCHEMA)
        meta = dict(db.execute("SELECT name, value FROM meta").fetchall())
        self.upstream_cursor = meta.get("upstream")
        self.marks = {name[5:]: value for name, value in meta.items() if name.startswith("mark:")}
        self.trimmed = meta.get("trimmed", 0)
        self.trimmed_seq = meta.get("trimmed_seq", 0)
        last, seq, total = db.execute(
            f"SELECT max(time_us), max(seq), total({_SIZE}) FROM events"
        ).fetchone()
        self.head = self.persisted = self.memory_floor = max(last or 0, self.trimmed)
        self.seq = max(seq or 0, self.trimmed_seq)
        self.disk_bytes = int(total)

    async def close(self) -> None:
        """Write what is still in memory, then close the databases."""
        self._closing = True
        self._stop.set()
        if self._flusher is not None:
            # Not cancelled: a write under way finishes, and is never done twice.
            await asyncio.gather(self._flusher, return_exceptions=True)
        if self._opened and self._unwritten:
            await self._flush()
        await self._db.close()

    # --- writing ---

    def stamp(self) -> int:
        """The key of the next event: now in unix microseconds, above every key before it."""
        key = max(int(self._clock() * 1_000_000), self.head + 1)
        self.head = key
        return key

    def append(self, entries: Sequence[Entry], upstream: int | None) -> None:
        """Add stamped events (in key order), and note the relay seq they came from; each
        gets the next seq."""
        for entry in entries:
            self.seq += 1
            entry.seq = self.seq
            self._keys.append(entry.key)
            self._entries.append(entry)
            self._held += _size(entry)
        self._unwritten.extend(entries)
        if upstream is not None:
            self._upstream = upstream
        if entries and not self._notify_pending:
            self._notify_pending = True
            interval = max(NOTIFY_INTERVAL, len(self._waiters) * NOTIFY_PER_WAITER)
            interval = min(interval, MAX_NOTIFY_INTERVAL)
            asyncio.get_running_loop().call_later(interval, self._notify)

    async def room(self) -> None:
        """Wait while too many events are not yet on disk."""
        while len(self._unwritten) > MAX_UNWRITTEN:
            self._written.clear()
            await self._written.wait()

    def _notify(self) -> None:
        self._notify_pending = False
        self._announced = self._newest()
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():  # else its subscriber was cancelled
                waiter.set_result(None)

    async def _flush_loop(self) -> None:
        last_trim = 0.0
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), FLUSH_INTERVAL)
            try:
                if self._unwritten or self._upstream is not None:
                    await self._flush()
                if time.monotonic() - last_trim >= TRIM_INTERVAL:
                    last_trim = time.monotonic()
                    await self._trim()
            except sqlite3.Error:
                log.exception("event log write failed; retrying")

    async def _flush(self) -> None:
        batch, self._unwritten = self._unwritten, []
        upstream, self._upstream = self._upstream, None
        try:
            await self._db.write(_write, batch, upstream)
        except Exception:  # not on cancellation: the write goes on in its thread
            self._unwritten[:0] = batch
            if self._upstream is None:
                self._upstream = upstream
            raise
        if batch:
            self.persisted = batch[-1].key
            self.disk_bytes += sum(_size(entry) for entry in batch)
        self._written.set()
        self._evict()

    async def _trim(self) -> None:
        cutoff = int((self._clock() - self._ttl) * 1_000_000)
        trimmed, seq, freed = await self._db.write(self._trim_disk, cutoff)
        if trimmed > self.trimmed:
            self.trimmed, self.trimmed_seq = trimmed, seq
            self.disk_bytes -= freed
            self._evict()

    def _trim_disk(self, db: sqlite3.Connection, cutoff: int) -> tuple[int, int, int]:
        """Delete what is older than the TTL, then the oldest until the log fits its bound;
        returns the newest key and seq deleted (or the previous ones) and the bytes freed."""
        upto, freed = db.execute(
            f"SELECT max(time_us), total({_SIZE}) FROM events WHERE time_us < ?", (cutoff,)
        ).fetchone()
        freed = int(freed)
        excess = self.disk_bytes - freed - int(self._max_bytes * _TRIM_SLACK)
        if self.disk_bytes - freed > self._max_bytes and excess > 0:
            rows = db.execute(
                f"SELECT time_us, {_SIZE} FROM events WHERE time_us >= ? ORDER BY time_us",
                (cutoff,),
            )
            for key, size in rows:
                upto, freed, excess = key, freed + size, excess - size
                if excess <= 0:
                    break
            rows.close()
        if upto is None or upto <= self.trimmed:
            return self.trimmed, self.trimmed_seq, 0
        (seq,) = db.execute("SELECT seq FROM events WHERE time_us = ?", (upto,)).fetchone()
        db.execute("DELETE FROM events WHERE time_us <= ?", (upto,))
        db.executemany(
            "INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)",
            [("trimmed", upto), ("trimmed_seq", seq)],
        )
        return upto, seq, freed

    def _evict(self) -> None:
        """Drop from memory what is on disk, beyond the memory budget or trimmed."""
        keys, entries, start = self._keys, self._entries, self._start
        while start < len(keys) and keys[start] <= self.persisted:
            if self._held <= self._memory_bytes and keys[start] > self.trimmed:
                break
            self._held -= _size(entries[start])
            self.memory_floor = keys[start]
            start += 1
        if start >= _COMPACT_AT and start * 2 >= len(keys):
            del keys[:start], entries[:start]
            start = 0
        self._start = start

    async def set_mark(self, name: str, key: int) -> None:
        """Persist a reader's position (the NATS publisher's), read back in `marks`."""
        self.marks[name] = key
        await self._db.write(_write_meta, f"mark:{name}", key)

    # --- reading ---

    def position(self, cursor: int | None) -> int:
        """Where a subscriber starts: after the newest event when it gives no cursor or one in
        the future (live), else before its cursor's time, but not before what is retained."""
        if cursor is None or cursor > max(self._clock() * 1_000_000, self.head):
            return self.head
        return max(cursor - 1, self.trimmed)

    async def position_of_seq(self, seq: int) -> int:
        """Where a subscriber resuming at `seq` (inclusive) starts: before the event with the
        lowest seq at or above it; live when there is none."""
        if seq > self.seq:
            return self.head
        start = self._start
        if start < len(self._entries) and self._entries[start].seq <= seq:
            index = bisect.bisect_left(self._entries, seq, start, key=_seq_of)
            return self._keys[index] - 1
        key = await self._db.read(_key_of_seq, seq)
        return self.head if key is None else key - 1

    async def read(self, after: int, limit: int) -> list[Entry]:
        """Up to `limit` events with keys above `after`, oldest first; FellBehind when some
        of them were trimmed."""
        if after >= self.memory_floor:
            keys, start = self._keys, self._start
            first = bisect.bisect_right(keys, after, start)
            return self._entries[first : first + limit]
        if after < self.trimmed:
            raise FellBehind(f"the log no longer holds events after {after}")
        upto = self.memory_floor
        rows = await self._db.read(_read_disk, after, upto, limit)
        if after < self.trimmed:  # trimmed while we read: what we got may have holes
            raise FellBehind(f"the log no longer holds events after {after}")
        return rows

    async def wait(self, after: int) -> None:
        """Return once the log has an event with a key above `after` that a wake-up announced
        (or it closes). Events appended since the last wake-up wait for the next one, which
        is scheduled already: a reader that finished a page while more arrived does not chase
        them a few at a time, it takes them with the next page."""
        while self._announced <= after:
            if self._closing or not self._opened:
                return
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter

    def _newest(self) -> int:
        """The key of the newest event appended (not just stamped)."""
        return self._keys[-1] if len(self._keys) > self._start else self.memory_floor

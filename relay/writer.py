"""The relay's only database writer, and its own firehose: re-sequenced, persisted, fanned out
(spec-event-stream.md; the whole path of an event: relay/HACKING.md).

Every accepted upstream event becomes a `Change`: the repo state to persist, the event to emit
(its upstream `seq` replaced by ours) and the host position it belongs to. Changes queue up
while the previous batch is being written; one worker-thread call then assigns seqs, encodes
each frame once and commits states, events and each host's position (relay.hostcursor, counting
the batch's events as finished) in ONE transaction. Only after that commit do the frames reach
subscribers (atcore.eventlog) and the events count as finished, so nothing is ever sent that is
not durable, and a crash leaves state, log and position all updated or none. Events older than
the replay window are compacted away periodically. Every other write (admin actions, hosts'
status) is a `run` queued behind the changes before it, so one thread writes, in one order.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from atcore.eventlog import EventLog, Frames
from atcore.frames import AccountEvent, CommitEvent, IdentityEvent, SyncEvent, encode_frame
from atcore.tasks import cancel_and_wait
from relay.accountcache import AccountCache
from relay.db import Database, accounts, events, hosts
from relay.hostcursor import HostCursor
from relay.metrics import Metrics
from relay.repostate import RepoState
from relay.writtencache import WrittenCache

log = logging.getLogger(__name__)

Emitted = CommitEvent | SyncEvent | IdentityEvent | AccountEvent
EMITTED = "relay_events_emitted_total"
COMPACT_INTERVAL = 600.0
RATE_WINDOW = 10.0
# Frames a live subscriber may fall behind before ConsumerTooSlow: the official relay's
# (indigo's events.EventManager, 16 << 10). Frames are shared by every subscriber, so the
# buffers together hold at most the newest 16,384 (~50 MB of #commit frames): seconds of slack
# at the network's peak, where 1,000 frames dropped a consumer stalled for a fifth of a second.
SUBSCRIBER_BUFFER = 16 << 10
_KIND = {
    CommitEvent: "commit",
    SyncEvent: "sync",
    IdentityEvent: "identity",
    AccountEvent: "account",
}


def kind_of(event: Emitted) -> str:
    return _KIND[type(event)]


def event_did(event: Emitted) -> str:
    return event.repo if isinstance(event, CommitEvent) else event.did


class Change(NamedTuple):
    """One transaction's worth of ingest: any of state, event, collections and host position
    (`upstream_seq` is the upstream event it comes from: finished once this is durable). A
    named tuple, made once per event: a frozen dataclass's __init__ cost ~4 µs of it."""

    host_id: int
    state: RepoState | None = None
    event: Emitted | None = None
    collections: tuple[str, ...] = ()
    replace_collections: bool = False
    position: HostCursor | None = None
    upstream_seq: int | None = None
    did: str | None = None  # with `takedown`: the account an admin action applies to
    takedown: bool | None = None
    # The event is as atcore.frames.decode_frame gave it, its fields checked there: it is
    # re-encoded without checking them again.
    decoded: bool = False


# A read run by the writer in queue order: it sees every change queued before it.
Query = Callable[[sqlite3.Connection], Any]


@dataclass
class _Pending:
    change: Change | Query
    done: asyncio.Future[Any]


class _Writes:
    """The row writes of one batch, one statement each: every account's last state (its host
    too unless relay.writtencache knows it is unchanged), the collections it newly indexes,
    every host's position (`positions`, taken before the batch). They are written before any
    read or admin change of the batch (and at its end), so each of those sees every change
    queued before it, as if each change were written in turn."""

    def __init__(self, written: WrittenCache, positions: dict[int, tuple[int, list[int]]]) -> None:
        self.written = written
        self.states: dict[str, tuple[int, RepoState]] = {}
        self.saved: dict[str, int] = {}  # DID -> host id, for every account the batch saves
        self.positions = positions  # host id -> (cursor, done seqs it adds)
        self.pairs: list[tuple[str, str]] = []
        self.indexed: dict[str, set[str]] = {}  # DID -> collections this batch indexes
        self.replaced: set[str] = set()  # DIDs whose whole index this batch rewrites

    def save(self, host_id: int, state: RepoState) -> None:
        self.states[state.did] = (host_id, state)
        self.saved[state.did] = host_id

    def index(self, did: str, collections: tuple[str, ...]) -> None:
        known = frozenset() if did in self.replaced else self.written.collections(did)
        new = [c for c in collections if c not in known]
        if not new:
            return
        indexed = self.indexed.setdefault(did, set())
        for collection in new:
            if collection not in indexed:
                indexed.add(collection)
                self.pairs.append((collection, did))

    def reindex(self, conn: sqlite3.Connection, did: str, collections: tuple[str, ...]) -> None:
        self.flush(conn)
        accounts.remove_collections(conn, did)
        self.replaced.add(did)
        self.indexed[did] = set()
        self.index(did, collections)

    def flush(self, conn: sqlite3.Connection) -> None:
        if self.states:
            same_host: list[tuple[int, RepoState]] = []
            in_full: list[tuple[int, RepoState]] = []
            for host_id, state in self.states.values():
                known = self.written.host(state.did) == host_id
                (same_host if known else in_full).append((host_id, state))
            if same_host and not accounts.update_states(conn, [s for _, s in same_host]):
                in_full += same_host
            if in_full:
                accounts.save_states(conn, in_full)
            self.states.clear()
        if self.pairs:
            accounts.add_collections(conn, self.pairs)
            self.pairs.clear()
        if self.positions:
            hosts.set_positions(conn, self.positions)
            self.positions = {}

    def committed(self) -> None:
        """The batch's transaction committed: the cache learns what it wrote."""
        for did, host_id in self.saved.items():
            self.written.saved(did, host_id)
        for did, indexed in self.indexed.items():
            self.written.indexed(did, indexed, replaced=did in self.replaced)


def _apply(conn: sqlite3.Connection, batch: Sequence[Change | Query], writes: _Writes) -> list[Any]:
    seq = events.head(conn)
    now_ms = int(time.time() * 1000)
    rows: list[Any] = []
    for change in batch:
        if not isinstance(change, Change):
            writes.flush(conn)
            rows.append(change(conn))
            continue
        if change.state is not None:
            writes.save(change.host_id, change.state)
            if change.replace_collections:
                writes.reindex(conn, change.state.did, change.collections)
            elif change.collections:
                writes.index(change.state.did, change.collections)
        if change.takedown is not None and change.did is not None:
            writes.flush(conn)
            accounts.set_takedown(conn, change.did, change.takedown)
        row = None
        if change.event is not None:
            seq += 1
            frame = encode_frame(change.event, check=not change.decoded, seq=seq)
            row = events.EventRow(
                seq, event_did(change.event), kind_of(change.event), frame, now_ms
            )
        rows.append(row)
    writes.flush(conn)
    events.append(conn, [row for row in rows if isinstance(row, events.EventRow)])
    return rows


def _finishing(batch: Sequence[_Pending]) -> dict[HostCursor, set[int]]:
    """The host positions a batch writes, each with the upstream events it makes durable."""
    found: dict[HostCursor, set[int]] = {}
    for p in batch:
        change = p.change
        if isinstance(change, Change) and change.position is not None:
            seqs = found.setdefault(change.position, set())
            if change.upstream_seq is not None:
                seqs.add(change.upstream_seq)
    return found


class Writer:
    """The event log in relay.sqlite, its group-committing writer and its subscribers."""

    def __init__(
        self,
        db: Database,
        replay_window: float,
        metrics: Metrics,
        *,
        compact_interval: float = COMPACT_INTERVAL,
        subscriber_buffer: int = SUBSCRIBER_BUFFER,
    ) -> None:
        self.db = db
        self.replay_window = replay_window
        self.compact_interval = compact_interval
        self.fanout = EventLog(self._read_after, self._oldest, buffer=subscriber_buffer)
        self.metrics = metrics
        self.accounts = AccountCache()
        self.written = WrittenCache()
        metrics.declare(EMITTED, "Events emitted on the relay's firehose, by kind")
        self._recent: deque[tuple[float, int]] = deque()
        self._pending: list[_Pending] = []
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._busy = False

    async def start(self) -> None:
        self.fanout.head = await self.db.write(events.head)
        self._tasks.append(asyncio.create_task(self._writer(), name="relay-log-writer"))
        self._tasks.append(asyncio.create_task(self._compactor(), name="relay-log-compact"))

    async def close(self) -> None:
        self.fanout.close()
        # Let queued changes reach the disk before stopping the writer.
        while self._pending or self._busy:
            await asyncio.sleep(0.01)
        await cancel_and_wait(self._tasks)
        self._tasks.clear()

    @property
    def head(self) -> int:
        return self.fanout.head

    async def commit(self, change: Change) -> int | None:
        """Persist a change; returns the seq of its event (None without one) once durable."""
        result: int | None = await self.submit(change)
        return result

    def submit(self, change: Change) -> asyncio.Future[int | None]:
        """Queue a change (the account cache reflects it at once); the future gives the seq
        of its event (None without one) once durable."""
        if change.state is not None:
            self.accounts.update(change.state.did, host_id=change.host_id, state=change.state)
        if change.did is not None and change.takedown is not None:
            self.accounts.update(change.did, takedown=change.takedown)
        return self._queue(change)

    async def run(self, query: Callable[..., Any], *args: Any) -> Any:
        """Run `query(conn, *args)` in the writer's transaction, after every change queued so
        far: a read that must see them, or a write of its own (admin actions, host status)."""
        return await self._queue(lambda conn: query(conn, *args))

    def _queue(self, item: Change | Query) -> asyncio.Future[Any]:
        if not self._tasks:
            raise RuntimeError("the relay log is not started")
        pending = _Pending(item, asyncio.get_running_loop().create_future())
        self._pending.append(pending)
        self._wake.set()
        return pending.done

    def subscribe(self, cursor: int | None) -> AsyncIterator[bytes]:
        return self.fanout.subscribe(cursor)

    def subscribe_batches(self, cursor: int | None) -> AsyncIterator[list[bytes]]:
        """The same frames in runs of whatever is ready (for sending them at once)."""
        return self.fanout.subscribe_batches(cursor)

    async def _writer(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._pending = self._pending, []
            if not batch:
                continue
            self._busy = True
            finishing = _finishing(batch)
            positions = {c.host_id: c.advance(seqs) for c, seqs in finishing.items()}
            writes = _Writes(self.written, positions)
            try:
                rows = await self.db.write(_apply, [p.change for p in batch], writes)
            except Exception as exc:  # the callers learn of it; the writer keeps serving
                log.exception("relay log append failed")
                self.accounts.forget()  # it reflected changes that did not happen
                for p in batch:
                    if not p.done.done():
                        p.done.set_exception(exc)
                continue
            finally:
                self._busy = False
            writes.committed()
            for position, seqs in finishing.items():
                position.persisted = positions[position.host_id][0]
                for seq in seqs:
                    position.finish(seq)
            kinds: dict[str, int] = {}
            for p, row in zip(batch, rows, strict=True):
                if not isinstance(p.change, Change):
                    if not p.done.done():
                        p.done.set_result(row)
                    continue
                if row is not None:
                    self.fanout.publish(row.seq, row.frame)
                    kinds[row.kind] = kinds.get(row.kind, 0) + 1
                if not p.done.done():
                    p.done.set_result(None if row is None else row.seq)
            for kind, count in kinds.items():
                self.metrics.inc(EMITTED, count, kind=kind)
            if kinds:
                self._recent.append((time.monotonic(), sum(kinds.values())))

    def persist(self, position: HostCursor) -> asyncio.Future[Any]:
        """Queue a write of `position` (events that needed no write finish in memory only)."""
        return self._queue(Change(position.host_id, position=position))

    def rate(self) -> float:
        """Events emitted per second over the last RATE_WINDOW seconds."""
        cutoff = time.monotonic() - RATE_WINDOW
        while self._recent and self._recent[0][0] < cutoff:
            self._recent.popleft()
        return sum(count for _, count in self._recent) / RATE_WINDOW

    async def _read_after(self, seq: int, limit: int) -> Frames:
        return await self.db.read(events.frames_after, seq, limit)

    async def _oldest(self) -> int | None:
        return await self.db.read(events.oldest)

    async def compact(self) -> int:
        """Drop events older than the replay window; returns how many were dropped."""
        cutoff = int((time.time() - self.replay_window) * 1000)
        return await self.db.write(events.compact, cutoff)

    async def _compactor(self) -> None:
        while True:
            await asyncio.sleep(self.compact_interval)
            try:
                dropped = await self.compact()
                if dropped:
                    log.info("compacted %d event(s) older than the replay window", dropped)
            except Exception:  # retried next round
                log.exception("event log compaction failed")

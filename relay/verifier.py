"""The costly half of #commit verification on other cores (spec-sync.md, "Message Validation
Checklist"; relay.validate.check_commit).

Parsing the CAR, checking the signature and inverting the ops depend only on the event and the
DID's signing key, so they can run ahead of the repo's state checks, in worker processes.
Events queued while the workers are busy go as one batch (one pickle round trip for many);
results come back as futures, which relay.ingest consumes in each host's order. With no
workers, `check` returns None and relay.validate does the whole check inline. The workers are
relay.workers processes, fed and read by the event loop; a batch whose worker dies fails with
WorkerFailed (relay.ingest then checks inline) and a new worker takes the dead one's place.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from functools import lru_cache

from atcore.cid import CID
from atcore.frames import CommitEvent, RepoOp
from atcore.keys import PublicKey, public_key_from_compressed
from relay.validate import CommitCheck, check_commit
from relay.workers import Worker, WorkerFailed

log = logging.getLogger(__name__)

# Jobs per batch: enough to amortise the round trip, few enough to keep results flowing.
BATCH = 64
# Batches in flight per worker: one running, one waiting, so a worker never idles.
DEPTH = 2
# Workers yield the CPU to the serving process (and anything else on the machine): they soak
# up spare cycles, but never delay reading upstreams or writing to subscribers.
WORKER_NICENESS = 10
# Seconds before replacing a worker that died without answering once: one that cannot start
# (a broken install, no memory) is not respawned in a tight loop.
RESTART_DELAY = 1.0
# Seconds close() gives the workers to exit on SIGTERM before it kills them.
STOP_TIMEOUT = 5.0

# What check_commit reads of a #commit, as plain values (binary CIDs): pickling CID and
# dataclass objects costs ~4x more on both sides of the pipe.
WireOp = tuple[str, str, bytes | None, bytes | None]
WireEvent = tuple[str, bytes, str, str | None, bytes, tuple[WireOp, ...], bytes | None]
Job = tuple[WireEvent, tuple[str, bytes] | None]
Batch = list[asyncio.Future[CommitCheck]]


def _cid(raw: bytes | None) -> CID | None:
    return None if raw is None else CID(raw)


def to_wire(event: CommitEvent) -> WireEvent:
    """The fields of `event` that check_commit reads."""
    ops = tuple(
        [
            (
                op.action,
                op.path,
                None if op.cid is None else op.cid.cid_bytes,
                None if op.prev is None else op.prev.cid_bytes,
            )
            for op in event.ops
        ]
    )
    prev_data = event.prev_data
    return (
        event.repo,
        event.commit.cid_bytes,
        event.rev,
        event.since,
        event.blocks,
        ops,
        None if prev_data is None else prev_data.cid_bytes,
    )


def from_wire(wire: WireEvent) -> CommitEvent:
    """A CommitEvent holding what to_wire kept (no seq, time or blobs: check_commit ignores
    them)."""
    repo, commit, rev, since, blocks, ops, prev_data = wire
    return CommitEvent(
        seq=0,
        repo=repo,
        commit=CID(commit),
        rev=rev,
        since=since,
        blocks=blocks,
        ops=tuple(RepoOp(a, path, _cid(cid), _cid(prev)) for a, path, cid, prev in ops),
        time="",
        prev_data=_cid(prev_data),
    )


@lru_cache(maxsize=65_536)
def _key(curve: str, raw: bytes) -> PublicKey:
    return public_key_from_compressed(curve, raw)


def check_batch(jobs: Sequence[Job]) -> list[CommitCheck]:
    """Run in a worker: check_commit for each (event, signing key as (curve, point))."""
    return [
        check_commit(from_wire(event), None if key is None else _key(*key)) for event, key in jobs
    ]


class Verifier:
    """`workers` processes checking commits in batches (none: checks stay inline). They start
    with the first check, in its event loop."""

    def __init__(self, workers: int) -> None:
        if workers < 0:
            raise ValueError("workers must not be negative")
        self.workers = workers
        self._loop: asyncio.AbstractEventLoop | None = None
        # One place per worker; None while its replacement is pending.
        self._slots: list[Worker[Batch] | None] = []
        self._queue: list[tuple[Job, asyncio.Future[CommitCheck]]] = []
        self._closed = False

    def pids(self) -> list[int]:
        """Process ids of the running workers."""
        return [worker.pid for worker in self._slots if worker is not None]

    def check(
        self, event: CommitEvent, key: PublicKey | None
    ) -> asyncio.Future[CommitCheck] | None:
        """Queue `event`'s check with `key` (the DID's current signing key, if known); None
        when it must be done inline (no workers, or none running)."""
        if self._closed or not self.workers:
            return None
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            self._slots = [None] * self.workers
            for slot in range(self.workers):
                self._start(slot)
        if not any(self._slots):  # every worker died and none has restarted yet
            return None
        done = self._loop.create_future()
        wire_key = None if key is None else (key.curve, key.compressed())
        self._queue.append(((to_wire(event), wire_key), done))
        self._dispatch()
        return done

    def _start(self, slot: int) -> None:
        assert self._loop is not None
        if self._closed:
            return
        try:
            worker = Worker(self._loop, check_batch, WORKER_NICENESS, self._answered, self._lost)
        except OSError as exc:
            log.error("cannot start a verifying worker (%s); trying again", exc)
            self._loop.call_later(RESTART_DELAY, self._start, slot)
            return
        self._slots[slot] = worker
        self._dispatch()

    def _dispatch(self) -> None:
        while self._queue:
            idlest = None
            for worker in self._slots:
                if worker is not None and len(worker.waiting) < DEPTH:
                    if idlest is None or len(worker.waiting) < len(idlest.waiting):
                        idlest = worker
            if idlest is None:
                return
            batch, self._queue = self._queue[:BATCH], self._queue[BATCH:]
            idlest.send([job for job, _ in batch], [done for _, done in batch])

    def _answered(
        self, worker: Worker[Batch], batch: Batch, reply: list[CommitCheck] | WorkerFailed
    ) -> None:
        if isinstance(reply, WorkerFailed):
            _fail(batch, str(reply))
        else:
            for done, result in zip(batch, reply, strict=True):
                if not done.done():
                    done.set_result(result)
        if self._queue:
            self._dispatch()

    def _lost(self, worker: Worker[Batch], batches: list[Batch]) -> None:
        assert self._loop is not None
        slot = self._slots.index(worker)
        self._slots[slot] = None
        log.warning(
            "verifying worker %d exited (code %s) with %d batches unanswered",
            worker.pid,
            worker.exitcode,
            len(batches),
        )
        for batch in batches:
            _fail(batch, f"verifying worker {worker.pid} exited (code {worker.exitcode})")
        if worker.answered:
            self._start(slot)
        else:
            self._loop.call_later(RESTART_DELAY, self._start, slot)
        if not self.pids():
            # Nothing would take the queue before a restart: check inline now.
            _fail([done for _, done in self._queue], "no verifying worker running")
            self._queue.clear()

    async def close(self) -> None:
        """Stop the workers (SIGTERM, then SIGKILL after STOP_TIMEOUT) and cancel every check
        not answered yet. The processes are waited for in a thread, not on the event loop."""
        self._closed = True
        workers = [worker for worker in self._slots if worker is not None]
        self._slots = []
        for worker in workers:
            worker.stop()
        deadline = time.monotonic() + STOP_TIMEOUT
        await asyncio.to_thread(_reap, workers, deadline)
        for worker in workers:
            for batch in worker.waiting:
                for done in batch:
                    done.cancel()
        for _, done in self._queue:
            done.cancel()
        self._queue.clear()


def _reap(workers: list[Worker[Batch]], deadline: float) -> None:
    for worker in workers:
        worker.reap(deadline)


def _fail(batch: Batch, reason: str) -> None:
    for done in batch:
        if not done.done():
            done.set_exception(WorkerFailed(reason))

"""The costly half of #commit verification on other cores (spec-sync.md, "Message Validation
Checklist"; relay.validate.check_commit).

Parsing the CAR, checking the signature and inverting the ops depend only on the event and the
DID's signing key, so they can run ahead of the repo's state checks, in worker processes.
Events queued while the workers are busy go as one batch (one pickle round trip for many);
results come back as futures, which relay.ingest consumes in each host's order. With no
workers, `check` returns None and relay.validate does the whole check inline.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from functools import lru_cache, partial

from atcore.cid import CID
from atcore.frames import CommitEvent, RepoOp
from atcore.keys import PublicKey, public_key_from_compressed
from relay.validate import CommitCheck, check_commit

# Jobs per batch: enough to amortise the round trip, few enough to keep results flowing.
BATCH = 64
# Batches in flight per worker: one running, one waiting, so a worker never idles.
DEPTH = 2
# Workers yield the CPU to the serving process (and anything else on the machine): they soak
# up spare cycles, but never delay reading upstreams or writing to subscribers.
WORKER_NICENESS = 10

# What check_commit reads of a #commit, as plain values (binary CIDs): pickling CID and
# dataclass objects costs ~4x more on both sides of the pipe.
WireOp = tuple[str, str, bytes | None, bytes | None]
WireEvent = tuple[str, bytes, str, str | None, bytes, tuple[WireOp, ...], bytes | None]
Job = tuple[WireEvent, tuple[str, bytes] | None]


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
    """A pool of `workers` processes checking commits in batches (none: checks stay inline)."""

    def __init__(self, workers: int) -> None:
        if workers < 0:
            raise ValueError("workers must not be negative")
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None
        if workers:
            # spawn: the relay runs threads (SQLite); forking them is unsafe.
            context = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(
                workers, mp_context=context, initializer=os.nice, initargs=(WORKER_NICENESS,)
            )
        self._queue: list[tuple[Job, asyncio.Future[CommitCheck]]] = []
        self._in_flight = 0

    def check(
        self, event: CommitEvent, key: PublicKey | None
    ) -> asyncio.Future[CommitCheck] | None:
        """Queue `event`'s check with `key` (the DID's current signing key, if known)."""
        if self._pool is None:
            return None
        done = asyncio.get_running_loop().create_future()
        wire_key = None if key is None else (key.curve, key.compressed())
        self._queue.append(((to_wire(event), wire_key), done))
        self._dispatch()
        return done

    def _dispatch(self) -> None:
        assert self._pool is not None
        loop = asyncio.get_running_loop()
        while self._queue and self._in_flight < self.workers * DEPTH:
            batch, self._queue = self._queue[:BATCH], self._queue[BATCH:]
            self._in_flight += 1
            running = self._pool.submit(check_batch, [job for job, _ in batch])
            running.add_done_callback(partial(self._finished, loop, batch))

    def _finished(
        self,
        loop: asyncio.AbstractEventLoop,
        batch: list[tuple[Job, asyncio.Future[CommitCheck]]],
        running: Future[list[CommitCheck]],
    ) -> None:
        # In the pool's thread: hand over to the event loop (gone if the relay is stopping).
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._finish, batch, running)

    def _finish(
        self,
        batch: list[tuple[Job, asyncio.Future[CommitCheck]]],
        running: Future[list[CommitCheck]],
    ) -> None:
        self._in_flight -= 1
        error = running.exception()
        results = running.result() if error is None else [None] * len(batch)
        for (_, done), result in zip(batch, results, strict=True):
            if done.done():
                continue
            if result is None:
                assert error is not None
                done.set_exception(error)
            else:
                done.set_result(result)
        if self._queue:
            self._dispatch()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        for _, done in self._queue:
            done.cancel()
        self._queue.clear()

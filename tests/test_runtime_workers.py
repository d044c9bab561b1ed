"""runtime.workers: requests and replies over the socket pair, in order, whatever their size; a
raising function fails one request; a lost process reports every unanswered one; stop and
reap leave no process behind."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from runtime.workers import Pool, Worker, WorkerFailed

# Seconds after which a test gives up on a reply: only a hang takes that long.
HANG = 60


def ignore_sigterm(_: object) -> int:
    """Run in a worker: make it deaf to SIGTERM, as a wedged worker would be."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    return os.getpid()


def exit_at_once(_: object) -> list[int]:
    """Run in a worker: die before answering anything."""
    os._exit(3)


class Replies:
    """Tags are futures: each gets its request's reply, or its loss as WorkerFailed."""

    def __init__(self) -> None:
        self.lost: list[list[asyncio.Future[Any]]] = []

    def reply(
        self, worker: Worker[asyncio.Future[Any]], tag: asyncio.Future[Any], value: Any
    ) -> None:
        if isinstance(value, WorkerFailed):
            tag.set_exception(value)
        else:
            tag.set_result(value)

    def gone(self, worker: Worker[asyncio.Future[Any]], tags: list[asyncio.Future[Any]]) -> None:
        self.lost.append(tags)
        for tag in tags:
            tag.set_exception(WorkerFailed("lost"))

    def start(self, function: Any) -> Worker[asyncio.Future[Any]]:
        return Worker(asyncio.get_running_loop(), function, 0, self.reply, self.gone)


def ask(worker: Worker[asyncio.Future[Any]], request: Any) -> asyncio.Future[Any]:
    tag = asyncio.get_running_loop().create_future()
    worker.send(request, tag)
    return tag


def children() -> set[int]:
    found: set[int] = set()
    for task in Path("/proc/self/task").iterdir():
        found.update(map(int, (task / "children").read_text().split()))
    return found


def stop(worker: Worker[Any]) -> None:
    worker.stop()
    worker.reap(time.monotonic() + HANG)


async def test_requests_larger_than_the_socket_buffer_arrive_whole_and_in_order() -> None:
    replies = Replies()
    worker = replies.start(bytes)  # bytes(bytes) is a copy: replies as large as requests
    try:
        sizes = [8 << 20, 1, 0, 3 << 20, 70_000, 5]
        requests = [bytes([i]) * size for i, size in enumerate(sizes)]
        answers = await asyncio.wait_for(asyncio.gather(*(ask(worker, r) for r in requests)), HANG)
        assert answers == requests
        assert worker.answered == len(sizes) and not worker.waiting
    finally:
        stop(worker)


async def test_a_raising_function_fails_only_its_request() -> None:
    replies = Replies()
    worker = replies.start(int)
    try:
        good, bad, after = ask(worker, "12"), ask(worker, "twelve"), ask(worker, "7")
        assert await asyncio.wait_for(good, HANG) == 12
        with pytest.raises(WorkerFailed, match="ValueError.*twelve"):
            await asyncio.wait_for(bad, HANG)
        assert await asyncio.wait_for(after, HANG) == 7
        assert replies.lost == []
    finally:
        stop(worker)


async def test_a_killed_process_reports_every_unanswered_request() -> None:
    replies = Replies()
    worker = replies.start(abs)
    assert await asyncio.wait_for(ask(worker, -3), HANG) == 3
    os.kill(worker.pid, signal.SIGSTOP)
    unanswered = [ask(worker, -i) for i in range(5)]
    os.kill(worker.pid, signal.SIGKILL)
    outcomes = await asyncio.wait_for(asyncio.gather(*unanswered, return_exceptions=True), HANG)
    assert all(isinstance(outcome, WorkerFailed) for outcome in outcomes)
    assert replies.lost == [unanswered]
    assert worker.exitcode == -signal.SIGKILL
    assert worker.pid not in children()


async def test_reap_kills_a_wedged_process() -> None:
    replies = Replies()
    worker = replies.start(ignore_sigterm)
    pid = await asyncio.wait_for(ask(worker, None), HANG)
    assert pid == worker.pid and pid in children()
    os.kill(pid, signal.SIGSTOP)  # nor does it see the end of its stream
    worker.stop()
    worker.reap(time.monotonic() + 0.2)
    assert worker.exitcode == -signal.SIGKILL
    assert pid not in children()


async def test_ready_returns_when_a_worker_dies_before_answering() -> None:
    pool: Pool[int] = Pool(exit_at_once, 1, 0)
    try:
        await asyncio.wait_for(pool.ready(), HANG)
    finally:
        await pool.close()

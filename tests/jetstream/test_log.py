"""jetstream.log: one sequence across SQLite and memory, bounded by age and size."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from jetstream.events import Entry
from jetstream.log import EventLog, FellBehind


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def make_log(path: Path, clock: Clock, **bounds: int | float) -> EventLog:
    options = {"ttl": 3600.0, "max_bytes": 1 << 30, "memory_bytes": 1 << 30} | bounds
    return EventLog(path / "log.sqlite", clock=clock, **options)  # type: ignore[arg-type]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def events(tmp_path: Path, clock: Clock) -> AsyncIterator[EventLog]:
    log = make_log(tmp_path, clock)
    await log.open()
    yield log
    await log.close()


def add(log: EventLog, count: int, upstream: int | None = None, size: int = 100) -> list[int]:
    entries = []
    for _ in range(count):
        key = log.stamp()
        entries.append(Entry(key, "commit", "did:plc:a", "app.bsky.feed.post", b"x" * size))
    log.append(entries, upstream)
    return [e.key for e in entries]


async def read_all(log: EventLog, after: int, page: int = 7) -> list[int]:
    keys: list[int] = []
    while batch := await log.read(after, page):
        keys += [e.key for e in batch]
        after = batch[-1].key
    return keys


async def flushed(log: EventLog) -> None:
    async with asyncio.timeout(5):
        while log.persisted < log.head:
            await asyncio.sleep(0.01)


async def test_keys_are_unique_and_increasing_even_when_the_clock_stands_still(
    events: EventLog,
) -> None:
    keys = add(events, 100)
    assert keys == list(range(keys[0], keys[0] + 100))
    assert await read_all(events, 0) == keys


async def test_reading_moves_from_disk_to_memory_without_gap_or_duplicate(
    tmp_path: Path, clock: Clock
) -> None:
    log = make_log(tmp_path, clock, memory_bytes=5_000)  # about 40 events stay in memory
    await log.open()
    try:
        keys = []
        for _ in range(10):
            keys += add(log, 50)
            await flushed(log)
        assert log.memory_floor > keys[0]  # most are only on disk now
        for start in (0, keys[0], keys[100], log.memory_floor - 1, log.memory_floor, keys[-2]):
            assert await read_all(log, start) == [k for k in keys if k > start]
    finally:
        await log.close()


async def test_reopening_keeps_events_upstream_cursor_and_key_order(
    tmp_path: Path, clock: Clock
) -> None:
    log = make_log(tmp_path, clock)
    await log.open()
    first = add(log, 20, upstream=41)
    await log.close()
    log = make_log(tmp_path, clock)
    await log.open()
    try:
        assert log.upstream_cursor == 41
        second = add(log, 5, upstream=42)
        assert second[0] > first[-1]
        assert await read_all(log, 0) == first + second
    finally:
        await log.close()


async def test_events_older_than_the_ttl_are_trimmed_and_a_reader_behind_is_cut_off(
    tmp_path: Path, clock: Clock
) -> None:
    log = make_log(tmp_path, clock, ttl=60.0, memory_bytes=1)
    await log.open()
    try:
        old = add(log, 10)
        await flushed(log)
        clock.now += 120
        new = add(log, 10)
        await flushed(log)
        await log._trim()
        assert log.trimmed == old[-1]
        with pytest.raises(FellBehind):
            await log.read(old[2], 10)
        # A new subscriber with an old cursor starts at what is retained.
        assert await read_all(log, log.position(old[0])) == new
    finally:
        await log.close()


async def test_the_log_keeps_to_its_size_bound(tmp_path: Path, clock: Clock) -> None:
    log = make_log(tmp_path, clock, max_bytes=50_000, memory_bytes=1)
    await log.open()
    try:
        keys = []
        for _ in range(10):
            keys += add(log, 100, size=200)
            await flushed(log)
            await log._trim()
        assert log.disk_bytes <= 50_000
        kept = await read_all(log, log.position(0))
        assert kept == keys[-len(kept) :] and 150 < len(kept) < 250
    finally:
        await log.close()


async def test_position_is_live_without_a_cursor_or_with_one_in_the_future(
    events: EventLog, clock: Clock
) -> None:
    keys = add(events, 3)
    assert events.position(None) == keys[-1]
    assert events.position(int(clock.now * 1e6) + 10_000_000) == keys[-1]
    assert events.position(keys[1]) == keys[0]


async def test_wait_returns_once_a_newer_event_is_appended(events: EventLog) -> None:
    keys = add(events, 1)
    waiter = asyncio.create_task(events.wait(keys[0]))
    await asyncio.sleep(0.02)
    assert not waiter.done()
    add(events, 1)
    await asyncio.wait_for(waiter, 1)


async def test_closing_during_a_write_keeps_every_event_once(tmp_path: Path, clock: Clock) -> None:
    keys: list[int] = []
    for _ in range(5):
        log = make_log(tmp_path, clock)
        await log.open()
        for _ in range(20):
            keys += add(log, 500, size=300)
            await asyncio.sleep(0.005)  # flushes start; close lands in one of them
        await log.close()
    log = make_log(tmp_path, clock)
    await log.open()
    try:
        assert await read_all(log, 0, page=5000) == keys
    finally:
        await log.close()

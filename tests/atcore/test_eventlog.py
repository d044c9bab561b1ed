"""atcore.eventlog: replay joined to live, cursor errors, and per-subscriber backpressure."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from atcore.eventlog import EventLog, Frames
from atcore.frames import IdentityEvent, InfoEvent, decode_frame, encode_frame
from atcore.xrpc.errors import InvalidRequest

DID = "did:plc:abcdefghijklmnopqrstuvwx"


class MemoryLog:
    """An in-memory durable log driving an EventLog the way a service's store does."""

    def __init__(self, buffer: int = 16, page: int = 50) -> None:
        self.rows: list[tuple[int, bytes]] = []
        self.reads = 0
        self.fanout = EventLog(self.read_after, self.oldest, buffer=buffer, page=page)

    async def read_after(self, seq: int, limit: int) -> Frames:
        self.reads += 1
        await asyncio.sleep(0)  # a real store answers from a worker thread
        return [row for row in self.rows if row[0] > seq][:limit]

    async def oldest(self) -> int | None:
        return self.rows[0][0] if self.rows else None

    def append(self) -> int:
        seq = (self.rows[-1][0] if self.rows else self.fanout.head) + 1
        frame = encode_frame(IdentityEvent(seq, DID, "2024-01-01T00:00:00.000Z"))
        self.rows.append((seq, frame))
        self.fanout.publish(seq, frame)
        return seq

    def trim(self, upto: int) -> None:
        self.rows = [row for row in self.rows if row[0] > upto]


def seq_of(frame: bytes) -> int:
    event = decode_frame(frame)
    assert isinstance(event, IdentityEvent)
    return event.seq


async def collect(gen: AsyncIterator[bytes], until: int) -> list[int]:
    seqs: list[int] = []
    async for frame in gen:
        seqs.append(seq_of(frame))
        if seqs[-1] >= until:
            break
    return seqs


async def test_replay_joins_live_without_gap_or_duplicate() -> None:
    log = MemoryLog(buffer=16, page=50)
    for _ in range(300):
        log.append()
    total = 2000

    async def writer() -> None:
        while log.fanout.head < total:
            for _ in range(min(7, total - log.fanout.head)):
                log.append()
            await asyncio.sleep(0)

    task = asyncio.create_task(writer())
    runs = await asyncio.wait_for(
        asyncio.gather(
            collect(log.fanout.subscribe(0), total),
            collect(log.fanout.subscribe(150), total),
            collect(log.fanout.subscribe(300), total),
        ),
        30,
    )
    await task
    assert runs[0] == list(range(1, total + 1))
    assert runs[1] == list(range(151, total + 1))
    assert runs[2] == list(range(301, total + 1))
    assert log.fanout.consumers == 0


async def test_no_cursor_gets_only_new_frames() -> None:
    log = MemoryLog()
    log.append()
    gen = log.fanout.subscribe(None)
    first = asyncio.create_task(anext(gen))
    await asyncio.sleep(0.01)
    assert log.fanout.consumers == 1
    log.append()
    assert seq_of(await asyncio.wait_for(first, 5)) == 2
    assert log.reads == 0
    await gen.aclose()


async def test_cursor_at_head_replays_nothing_then_goes_live() -> None:
    log = MemoryLog()
    for _ in range(5):
        log.append()
    gen = log.fanout.subscribe(5)
    nxt = asyncio.create_task(anext(gen))
    await asyncio.sleep(0.01)
    log.append()
    assert seq_of(await asyncio.wait_for(nxt, 5)) == 6
    await gen.aclose()


async def test_future_cursor_is_refused_before_anything_is_sent() -> None:
    log = MemoryLog()
    log.append()
    with pytest.raises(InvalidRequest) as caught:
        await anext(log.fanout.subscribe(2))
    assert caught.value.error == "FutureCursor"
    assert log.fanout.consumers == 0
    assert seq_of(await anext(log.fanout.subscribe(1 - 1))) == 1


async def test_outdated_cursor_gets_info_then_the_oldest() -> None:
    log = MemoryLog()
    for _ in range(8):
        log.append()
    log.trim(5)
    gen = log.fanout.subscribe(2)
    info = decode_frame(await anext(gen))
    assert isinstance(info, InfoEvent) and info.name == "OutdatedCursor"
    assert await collect(gen, 8) == [6, 7, 8]
    assert await collect(log.fanout.subscribe(0), 8) == [6, 7, 8]  # 0: the whole window
    assert await collect(log.fanout.subscribe(5), 8) == [6, 7, 8]  # nothing missed: no info


async def test_stalled_consumer_is_dropped_while_a_fast_one_keeps_up() -> None:
    log = MemoryLog(buffer=8)
    stalled = log.fanout.subscribe(None)
    fast = log.fanout.subscribe(None)
    # Both join the fan-out (an async generator starts on its first anext).
    stalled_first = asyncio.create_task(anext(stalled))
    fast_seen: list[int] = []

    async def read_fast() -> None:
        async for frame in fast:
            fast_seen.append(seq_of(frame))
            if fast_seen[-1] == 100:
                return

    reader = asyncio.create_task(read_fast())
    await asyncio.sleep(0.01)
    assert log.fanout.consumers == 2
    log.append()
    assert seq_of(await stalled_first) == 1  # then the stalled consumer stops reading
    for _ in range(99):
        log.append()
        await asyncio.sleep(0)
    await asyncio.wait_for(reader, 5)
    assert fast_seen == list(range(1, 101))
    assert log.fanout.consumers == 1  # the stalled one left the fan-out
    await fast.aclose()
    assert log.fanout.consumers == 0
    with pytest.raises(InvalidRequest) as caught:
        await anext(stalled)
    assert caught.value.error == "ConsumerTooSlow"


async def test_close_ends_every_stream_and_publish_checks_order() -> None:
    log = MemoryLog()
    log.append()
    gen = log.fanout.subscribe(None)
    waiting = asyncio.create_task(anext(gen))
    await asyncio.sleep(0.01)
    log.fanout.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(waiting, 5)
    with pytest.raises(ValueError, match="published after"):
        log.fanout.publish(1, b"")
    with pytest.raises(ValueError):
        EventLog(log.read_after, log.oldest, buffer=0)


async def test_a_live_subscriber_far_behind_gets_runs_of_a_page_at_most() -> None:
    """Frames queued while a live subscriber was not reading come back in order and whole, in
    runs no longer than a page: one send never holds the whole buffer."""
    log = MemoryLog(buffer=1000, page=50)
    gen = log.fanout.subscribe_batches(None)
    first = asyncio.create_task(anext(gen))
    await asyncio.sleep(0.01)
    log.append()
    runs = [await asyncio.wait_for(first, 5)]
    for _ in range(420):
        log.append()
    while sum(map(len, runs)) < 421:
        runs.append(await asyncio.wait_for(anext(gen), 5))
    await gen.aclose()
    assert [seq_of(frame) for run in runs for frame in run] == list(range(1, 422))
    assert max(map(len, runs)) == 50

"""The PDS event log: durable appends, cursor replay joined to live, backpressure, trimming."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from atcore.frames import IdentityEvent, InfoEvent, decode_frame
from atcore.xrpc.errors import InvalidRequest
from pds.actor_store import ActorStores
from pds.sequencer import Sequencer
from tests.atcore.test_eventlog import collect, seq_of

DID = "did:plc:abcdefghijklmnopqrstuvwx"


async def make(tmp_path: Path, **kwargs: float) -> tuple[Sequencer, ActorStores]:
    actors = ActorStores(tmp_path / "actors")
    seq = Sequencer(tmp_path, actors, **kwargs)  # type: ignore[arg-type]
    await seq.start()
    return seq, actors


@pytest.fixture
async def sequencer(tmp_path: Path) -> AsyncIterator[Sequencer]:
    seq, actors = await make(tmp_path, subscriber_buffer=16)
    yield seq
    await seq.close()
    await actors.close()


async def test_appends_are_numbered_and_survive_restart(tmp_path: Path) -> None:
    seq, actors = await make(tmp_path)
    numbers = [await seq.emit_identity(DID, f"h{i}.test") for i in range(5)]
    assert numbers == [1, 2, 3, 4, 5]
    await seq.close()
    await actors.close()
    seq, actors = await make(tmp_path)
    assert seq.head == 5
    assert await seq.emit_identity(DID, None) == 6
    frames = await collect(seq.subscribe(0), until=6)
    assert frames == [1, 2, 3, 4, 5, 6]
    first = decode_frame(await anext(seq.subscribe(0)))
    assert isinstance(first, IdentityEvent) and first.handle == "h0.test" and first.did == DID
    await seq.close()
    await actors.close()


async def test_replay_joins_live_without_gap_or_duplicate(sequencer: Sequencer) -> None:
    for i in range(300):
        await sequencer.emit_identity(DID, f"a{i}.test")
    total = 1500

    async def writer() -> None:
        # Concurrent appends (several per batch) while the subscriber replays with a buffer of 16.
        for i in range(300, total, 3):
            await asyncio.gather(*(sequencer.emit_identity(DID, None) for _ in range(3)))
            if i % 30 == 0:
                await asyncio.sleep(0)

    task = asyncio.create_task(writer())
    seqs = await asyncio.wait_for(collect(sequencer.subscribe(0), until=total), 30)
    await task
    assert seqs == list(range(1, total + 1))
    mid = await asyncio.wait_for(collect(sequencer.subscribe(700), until=total), 30)
    assert mid == list(range(701, total + 1))


async def test_live_subscriber_without_cursor_gets_only_new_events(sequencer: Sequencer) -> None:
    await sequencer.emit_identity(DID, None)
    gen = sequencer.subscribe(None)
    first = asyncio.create_task(anext(gen))
    await asyncio.sleep(0.01)
    await sequencer.emit_identity(DID, "new.test")
    assert seq_of(await asyncio.wait_for(first, 5)) == 2
    await gen.aclose()


async def test_each_event_is_encoded_once_for_all_subscribers(sequencer: Sequencer) -> None:
    subscribers = [sequencer.subscribe(None) for _ in range(3)]
    nexts = [asyncio.create_task(anext(gen)) for gen in subscribers]
    await asyncio.sleep(0.01)
    await sequencer.emit_identity(DID, "shared.test")
    frames = await asyncio.wait_for(asyncio.gather(*nexts), 5)
    assert all(frame is frames[0] for frame in frames)  # one bytes object, not three encodings
    for gen in subscribers:
        await gen.aclose()


async def test_future_cursor_is_refused(sequencer: Sequencer) -> None:
    await sequencer.emit_identity(DID, None)
    with pytest.raises(InvalidRequest) as caught:
        await anext(sequencer.subscribe(2))
    assert caught.value.error == "FutureCursor"
    assert seq_of(await anext(sequencer.subscribe(0))) == 1


async def test_outdated_cursor_gets_info_then_oldest(tmp_path: Path) -> None:
    seq, actors = await make(tmp_path, retention_seconds=0.3)
    for _ in range(5):
        await seq.emit_identity(DID, None)
    await asyncio.sleep(0.4)
    for _ in range(3):
        await seq.emit_identity(DID, None)
    assert await seq.trim() == 5
    gen = seq.subscribe(2)
    info = decode_frame(await anext(gen))
    assert isinstance(info, InfoEvent) and info.name == "OutdatedCursor"
    assert await collect(gen, until=8) == [6, 7, 8]
    assert await collect(seq.subscribe(0), until=8) == [6, 7, 8]  # 0: whole window, no info
    assert await collect(seq.subscribe(5), until=8) == [6, 7, 8]  # nothing missed: no info
    await seq.close()
    await actors.close()
    # Trimming everything never lets seq numbers restart.
    seq, actors = await make(tmp_path, retention_seconds=0)
    await seq.trim()
    assert await seq.emit_identity(DID, None) == 9
    await seq.close()
    await actors.close()


async def test_stalled_subscriber_is_dropped_while_fast_one_continues(
    sequencer: Sequencer,
) -> None:
    slow = sequencer.subscribe(None)
    fast = sequencer.subscribe(None)
    slow_first = asyncio.create_task(anext(slow))
    fast_seqs = asyncio.create_task(collect(fast, until=100))
    await asyncio.sleep(0.01)
    for _ in range(100):
        await sequencer.emit_identity(DID, None)
    assert seq_of(await slow_first) == 1
    assert await asyncio.wait_for(fast_seqs, 10) == list(range(1, 101))
    with pytest.raises(InvalidRequest) as caught:
        await anext(slow)
    assert caught.value.error == "ConsumerTooSlow"

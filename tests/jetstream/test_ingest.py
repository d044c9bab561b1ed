"""jetstream.ingest trusting its relay (JETSTREAM_TRUST_RELAY): the CAR read without hashing
its blocks, the frame without the data-model walk, and still no event from a commit whose
records cannot be read. (Verifying ingest runs against a real relay in the network tests.)"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from atcore import cbor
from atcore.car import write_car
from atcore.cid import cid_for_cbor
from atcore.frames import CommitEvent, RepoOp, encode_frame
from jetstream.ingest import Ingest
from jetstream.log import EventLog

DID = "did:plc:abcdefghijklmnopqrstuvwx"
TIME = "2025-01-01T00:00:00.000Z"
COMMIT = cbor.encode({"did": DID, "rev": "3l"})
POST = cbor.encode({"$type": "app.bsky.feed.post", "text": "a <b> & c", "createdAt": TIME})
LIKE = cbor.encode({"$type": "app.bsky.feed.like", "createdAt": TIME})


def commit_frame(blocks: bytes, *ops: RepoOp) -> bytes:
    event = CommitEvent(1, DID, cid_for_cbor(COMMIT), "3l", None, blocks, ops, TIME)
    return encode_frame(event)


def car(*blocks: bytes) -> bytes:
    return write_car(cid_for_cbor(COMMIT), [(cid_for_cbor(b), b) for b in (COMMIT, *blocks)])


def create(path: str, block: bytes) -> RepoOp:
    return RepoOp("create", path, cid_for_cbor(block))


@pytest.fixture
async def ingest(tmp_path: Path) -> AsyncIterator[Ingest]:
    events = EventLog(tmp_path / "log.sqlite", ttl=3600, max_bytes=1 << 30, memory_bytes=1 << 20)
    await events.open()
    yield Ingest("ws://127.0.0.1:9/", events, None, cursor=None)
    await events.close()


async def bodies(ingest: Ingest) -> list[dict]:
    return [json.loads(entry.body) for entry in await ingest.events.read(0, 100)]


async def test_each_op_becomes_an_event_with_its_record(ingest: Ingest) -> None:
    delete = RepoOp("delete", "app.bsky.feed.like/2", None, prev=cid_for_cbor(LIKE))
    frame = commit_frame(
        car(POST, LIKE), create("app.bsky.feed.post/1", POST), delete, create("x.y.z/3", LIKE)
    )
    await ingest.handle(frame)
    events = await bodies(ingest)
    assert [e["commit"]["operation"] for e in events] == ["create", "delete", "create"]
    assert events[0]["commit"]["record"] == cbor.decode(POST)
    assert events[0]["commit"]["cid"] == cid_for_cbor(POST).encode()
    assert "record" not in events[1]["commit"]
    assert events[2]["commit"]["collection"] == "x.y.z"
    assert ingest.stats.events == 3 and ingest.stats.dropped == 0
    assert ingest.cursor == 1


BAD = b"\xa1\x61"  # a map whose key is cut short


@pytest.mark.parametrize(
    "blocks,record",
    [
        (car(POST), LIKE),  # the record is not in the CAR
        (car(POST, LIKE)[:-3], LIKE),  # the CAR is cut short
        (car(POST, BAD), BAD),  # the record is not DAG-CBOR
    ],
)
async def test_a_commit_whose_records_cannot_be_read_is_dropped(
    ingest: Ingest, blocks: bytes, record: bytes
) -> None:
    ops = [create("app.bsky.feed.post/1", POST), create("app.bsky.feed.like/2", record)]
    await ingest.handle(commit_frame(blocks, *ops))
    assert await bodies(ingest) == []
    assert ingest.stats.dropped == 1
    assert ingest.cursor == 1  # the relay's seq moves on all the same

"""Publishing to NATS JetStream (the real server on 127.0.0.1:4222): one subject per
collection, every event once across a restart, consumers filter with subject wildcards."""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest
from nats.js.api import DeliverPolicy

from tests.jetstream.harness import DIDS, Stream, start_stream

pytestmark = pytest.mark.integration

NATS_URL = "nats://127.0.0.1:4222"


def nats_running() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 4222), timeout=1).close()
    except OSError:
        return False
    return True


@pytest.fixture
async def names() -> AsyncIterator[tuple[str, str]]:
    """A stream and subject prefix of this test's own, deleted afterwards."""
    if not nats_running():
        pytest.skip("no NATS server on 127.0.0.1:4222")
    token = uuid.uuid4().hex[:12]
    yield f"TEST_{token}", f"test-{token}"
    nc = await nats.connect(NATS_URL)
    try:
        await nc.jetstream().delete_stream(f"TEST_{token}")
    finally:
        await nc.close()


def settings(names: tuple[str, str]) -> dict[str, str]:
    return {"nats_url": NATS_URL, "nats_stream": names[0], "nats_subject": names[1]}


async def published(stream: Stream, count: int) -> None:
    publisher = stream.ctx.nats
    assert publisher is not None
    async with asyncio.timeout(20):
        while publisher.published < count:
            await asyncio.sleep(0.02)


async def read_subject(subject: str, count: int) -> list[dict[str, object]]:
    nc = await nats.connect(NATS_URL)
    try:
        js = nc.jetstream()
        sub = await js.subscribe(subject, ordered_consumer=True, deliver_policy=DeliverPolicy.ALL)
        out = []
        async with asyncio.timeout(20):
            while len(out) < count:
                message = await sub.next_msg(timeout=10)
                out.append(json.loads(message.data) | {"msgid": message.headers["Nats-Msg-Id"]})
        return out
    finally:
        await nc.close()


async def test_events_reach_nats_once_per_event_across_a_restart(
    tmp_path: Path, names: tuple[str, str]
) -> None:
    stream_name, prefix = names
    async with start_stream(tmp_path, **settings(names)) as stream:
        first = stream.add(200)
        await published(stream, 200)
    async with start_stream(tmp_path, **settings(names)) as stream:
        second = stream.add(100)
        await published(stream, 100)
        info = await stream.ctx.nats._nc.jetstream().stream_info(stream_name)  # type: ignore[union-attr]
    everything = first + second
    assert info.state.messages == len(everything)
    graph = [e for e in everything if (e.collection or "").startswith("app.bsky.graph.")]
    got = await read_subject(f"{prefix}.commit.app.bsky.graph.>", len(graph))
    assert [int(m["msgid"]) for m in got] == [e.key for e in graph]
    assert [m["time_us"] for m in got] == [e.key for e in graph]
    accounts = [e for e in everything if e.kind == "account"]
    got = await read_subject(f"{prefix}.account", len(accounts))
    assert {m["did"] for m in got} <= set(DIDS) and len(got) == len(accounts)

"""/subscribe against the app in-process, its log fed directly: filters, cursors, the
replay-to-live cutover under load, compression, requireHello, options_update, bad input and
the cut-off of a subscriber the log left behind."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from jetstream.compress import V1
from jetstream.events import Entry
from tests.jetstream.conftest import LIKE, open_stream
from tests.jetstream.harness import COLLECTIONS, DIDS, Stream, start_stream


@pytest.fixture
async def stream(tmp_path: Path) -> AsyncIterator[Stream]:
    async with start_stream(tmp_path) as running:
        yield running


@pytest.fixture(params=["uvicorn", "hypercorn"])
async def any_server_stream(
    tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Stream]:
    """The stream under either server: SEND_FRAMES under uvicorn, plain ASGI sends otherwise."""
    async with start_stream(tmp_path, request.param) as running:
        yield running


async def collect(
    url: str, until: int | Callable[[], int | None], *, decode: Any = json.loads
) -> list[dict[str, Any]]:
    """Events from `url` until one at or past `until` (a key, or a function giving the key
    once it is known)."""
    target = until if callable(until) else lambda: until
    got: list[dict[str, Any]] = []
    async with open_stream(url) as ws, asyncio.timeout(60):
        while not got or (end := target()) is None or got[-1]["time_us"] < end:
            got.append(decode(await ws.recv()))
    return got


async def test_cursor_replay_then_live_has_no_gap_and_no_duplicate_under_load(
    tmp_path: Path,
) -> None:
    # A small memory budget: replays start on disk and cross into memory while events pour in.
    async with start_stream(tmp_path, memory_bytes=200_000) as stream:
        history = stream.add(3000)
        made: list[Entry] = []
        total = 30_000
        done: list[int] = []

        async def produce() -> None:
            while True:
                made.extend(stream.add(100))
                if len(made) >= total:  # known before any reader can see the last event
                    done.append(made[-1].key)
                    return
                await asyncio.sleep(0.002)

        producer = asyncio.create_task(produce())
        cursors = [history[0].key, history[1500].key, history[-1].key]
        readers = []
        for cursor in cursors:
            await asyncio.sleep(0.1)
            url = stream.ws(f"cursor={cursor}")
            readers.append(asyncio.create_task(collect(url, lambda: done[0] if done else None)))
        await producer
        results = await asyncio.gather(*readers)
        assert stream.events.memory_floor > history[-1].key  # the replays did start on disk
        everything = [e.key for e in history + made]
        for cursor, got in zip(cursors, results, strict=True):
            assert [e["time_us"] for e in got] == [k for k in everything if k >= cursor]


async def test_live_subscribers_at_several_moments_see_every_later_event_once(
    any_server_stream: Stream,
) -> None:
    stream = any_server_stream
    stream.add(10)
    async with open_stream(stream.ws()) as early:
        await asyncio.sleep(0.05)
        entries = stream.add(2000)
        got = []
        async with asyncio.timeout(20):
            while len(got) < 2000:
                got.append(json.loads(await early.recv())["time_us"])
    assert got == [e.key for e in entries]


async def test_filters_by_collection_prefix_did_and_size(stream: Stream) -> None:
    entries = stream.add(400, size=0) + stream.add(4, size=3000)
    last = entries[-1].key
    query = f"cursor={entries[0].key}&wantedCollections=app.bsky.graph.*&wantedDids={DIDS[1]}"
    got = await collect(stream.ws(query + f"&wantedDids={DIDS[2]}"), 0, decode=json.loads)
    async with open_stream(stream.ws(query)) as ws, asyncio.timeout(10):
        got = []
        while True:
            event = json.loads(await ws.recv())
            got.append(event)
            if event["time_us"] >= max(
                e.key
                for e in entries
                if e.did == DIDS[1] and (e.collection or "").startswith("app.bsky.graph.")
            ):
                break
    assert {e["did"] for e in got} == {DIDS[1]}
    assert {e["commit"]["collection"] for e in got if e["kind"] == "commit"} <= set(COLLECTIONS[2:])
    assert any(e["kind"] == "account" for e in got)  # identity/account bypass collections
    small = f"cursor={entries[0].key}&maxMessageSizeBytes=1000"
    got = await collect(stream.ws(small), max(e.key for e in entries[:400]))
    assert all(len(json.dumps(e)) < 1000 for e in got)
    assert last not in [e["time_us"] for e in got]


async def test_compress_sends_zstd_frames_made_with_the_dictionary(stream: Stream) -> None:
    entries = stream.add(20)
    unzip = V1.decompressor()

    def decode(frame: bytes) -> Any:
        assert isinstance(frame, bytes)
        return json.loads(unzip.decompress(frame))

    got = await collect(
        stream.ws(f"cursor={entries[0].key}&compress=true"), entries[-1].key, decode=decode
    )
    assert [e["time_us"] for e in got] == [e.key for e in entries]
    assert [json.dumps(e, separators=(",", ":"), ensure_ascii=False).encode() for e in got][
        :1
    ] != []


async def test_require_hello_waits_for_options_update_which_sets_the_filter(
    stream: Stream,
) -> None:
    entries = stream.add(100)
    async with open_stream(stream.ws(f"cursor={entries[0].key}&requireHello=true")) as ws:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(ws.recv(), 0.3)
        hello = {"type": "options_update", "payload": {"wantedCollections": [LIKE]}}
        await ws.send(json.dumps(hello))
        first = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert first["commit"]["collection"] == LIKE
        await ws.send(json.dumps({"type": "something_else", "payload": {}}))
        await ws.send(b"\x00binary is ignored")
        update = {"type": "options_update", "payload": {"wantedDids": [DIDS[3]]}}
        await ws.send(json.dumps(update))
        later = stream.add(8)
        async with asyncio.timeout(5):
            while (event := json.loads(await ws.recv()))["time_us"] < later[0].key:
                pass
        assert event["did"] == DIDS[3]


@pytest.mark.parametrize(
    ("message", "code", "reason"),
    [
        ("not json", 1007, "bad SubscriberSourcedMessage envelope"),
        ('["a list"]', 1007, "bad SubscriberSourcedMessage envelope"),
        ("[" * 100_000, 1007, "bad SubscriberSourcedMessage envelope"),  # json.loads recursion
        ('{"type": "options_update", "payload": 5}', 1007, "bad options_update payload"),
        (
            '{"type": "options_update", "payload": {"wantedCollections": ["no"]}}',
            1008,
            "invalid collection: no",
        ),
        (
            json.dumps(
                {
                    "type": "options_update",
                    "payload": {"wantedDids": [f"did:plc:{i:024d}" for i in range(10_001)]},
                }
            ),
            1008,
            "too many wanted DIDs: 10001 > 10000",
        ),
    ],
)
async def test_bad_client_messages_close_with_a_code_and_reason(
    stream: Stream, message: str, code: int, reason: str
) -> None:
    async with open_stream(stream.ws("requireHello=true")) as ws:
        await ws.send(message)
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason[: len(reason)]) == (code, reason)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("wantedCollections=app.bsky", "invalid collection: app.bsky"),
        ("wantedDids=alice", "invalid DID: alice"),
        ("cursor=yesterday", "invalid cursor: 'yesterday'"),
        ("cursor=-5", "invalid cursor: negative value -5"),
        (
            "&".join(f"wantedCollections=a.b.c{i}" for i in range(101)),
            "too many wanted collections",
        ),
    ],
)
async def test_bad_queries_are_refused_before_the_upgrade(
    stream: Stream, query: str, message: str
) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with open_stream(stream.ws(query)):
            pass
    response = refused.value.response
    assert response.status_code == 400
    body = json.loads(response.body or b"{}")
    assert body["error"] == "InvalidRequest" and body["message"].startswith(message)


async def test_a_subscriber_the_log_left_behind_is_cut_off_with_the_reason(
    tmp_path: Path,
) -> None:
    bounds = {"memory_bytes": 1, "max_log_bytes": 1 << 20}
    async with start_stream(tmp_path, **bounds) as stream:
        first = stream.add(1)
        async with open_stream(stream.ws(f"cursor={first[0].key}"), max_queue=1) as ws:
            got = [json.loads(await ws.recv())["time_us"]]
            # 30 MB while it reads nothing: the socket fills and the log trims past it.
            for _ in range(30):
                stream.add(100, size=10_000)
                await asyncio.sleep(0.05)
            async with asyncio.timeout(20):
                while stream.events.trimmed < first[0].key + 1000:
                    await asyncio.sleep(0.1)
            with pytest.raises(ConnectionClosed) as closed:
                async with asyncio.timeout(20):
                    while True:
                        got.append(json.loads(await ws.recv())["time_us"])
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        assert closed.value.rcvd.reason.startswith("ConsumerTooSlow")
        assert got == sorted(set(got))


async def test_status_page_reports_the_log(stream: Stream) -> None:
    entries = stream.add(3)
    async with httpx.AsyncClient() as http:
        status = (await http.get(stream.url + "/")).json()
    assert status["service"] == "jetstream" and status["head"] == entries[-1].key

"""network.bsky.jetstream.subscribeEvents (the v2 endpoint) from the same log: frames, seq and
time cursors, CursorTooOld, kinds with #sync, zstd with getZstdDictionary, bad parameters."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import zstandard
from websockets.exceptions import ConnectionClosed, InvalidStatus

from jetstream.events import Entry, sync_json
from tests.jetstream.conftest import open_stream
from tests.jetstream.harness import DIDS, Stream, start_stream

NSID = "network.bsky.jetstream.subscribeEvents"
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


@pytest.fixture
async def stream(tmp_path: Path) -> AsyncIterator[Stream]:
    async with start_stream(tmp_path) as running:
        yield running


def url(stream: Stream, query: str = "") -> str:
    base = stream.url.replace("http://", "ws://") + f"/xrpc/{NSID}"
    return f"{base}?{query}" if query else base


def add_sync(stream: Stream) -> Entry:
    key = stream.events.stamp()
    body = sync_json(DIDS[0], key, 7, "2025-01-01T00:00:00.000Z", "3l", b"\x01\x02")
    entry = Entry(key, "sync", DIDS[0], None, body)
    stream.events.append([entry], None)
    return entry


async def frames(address: str, count: int, decode: Any = json.loads, **kw: Any) -> list[Any]:
    async with open_stream(address, **kw) as ws, asyncio.timeout(15):
        return [decode(await ws.recv()) for _ in range(count)]


async def test_frames_carry_seq_time_and_the_payload_in_lexicon_order(stream: Stream) -> None:
    entries = stream.add(50)
    got = await frames(url(stream, f"cursor={entries[10].seq}"), 40)
    assert [f["payload"]["seq"] for f in got] == [e.seq for e in entries[10:]]
    first = got[0]
    assert first["$type"] == "message"
    payload = first["payload"]
    assert payload["$type"] == f"{NSID}#commit"
    assert list(payload) == sorted(payload)
    assert TIME.fullmatch(payload["time"]) and payload["did"] == entries[10].did
    assert {"rev", "operation", "collection", "rkey", "record", "cid"} <= set(payload)
    account = next(f["payload"] for f in got if f["payload"]["$type"].endswith("#account"))
    assert account["account"]["active"] is True


async def test_sync_events_are_delivered_here_and_never_on_subscribe(stream: Stream) -> None:
    before = stream.add(3)
    sync = add_sync(stream)
    after = stream.add(1)
    got = await frames(url(stream, f"cursor={before[0].seq}&kinds=sync"), 1)
    assert got[0]["payload"]["$type"] == f"{NSID}#sync"
    assert got[0]["payload"]["sync"]["blocks"] == {"$bytes": "AQI"}
    assert got[0]["payload"]["seq"] == sync.seq
    legacy = stream.ws(f"cursor={before[0].key}")
    keys = [e["time_us"] for e in await frames(legacy, 4)]
    assert keys == [e.key for e in before + after]


async def test_filters_are_anded(stream: Stream) -> None:
    entries = stream.add(200)
    query = f"cursor={entries[0].seq}&kinds=commit&dids={DIDS[2]}&collections=app.bsky.graph.*"
    want = [
        e.seq
        for e in entries
        if e.kind == "commit"
        and e.did == DIDS[2]
        and (e.collection or "").startswith("app.bsky.graph.")
    ]
    got = await frames(url(stream, query), len(want))
    assert [f["payload"]["seq"] for f in got] == want


async def test_a_time_cursor_before_the_log_gets_outdated_cursor_first(tmp_path: Path) -> None:
    async with start_stream(tmp_path, memory_bytes=1, max_log_bytes=1 << 20) as stream:
        first = stream.add(1)
        for _ in range(20):
            stream.add(100, size=10_000)
            await asyncio.sleep(0.05)
        async with asyncio.timeout(20):
            while stream.events.trimmed_seq < 100:
                await asyncio.sleep(0.1)
        floor = stream.events.trimmed_seq + 1
        got = await frames(url(stream, f"cursor={first[0].key}"), 2)
        assert got[0]["payload"] == {
            "$type": f"{NSID}#info",
            "message": "cursor is older than the log; starting at the oldest event retained",
            "name": "OutdatedCursor",
        }
        assert got[1]["payload"]["seq"] >= floor
        with pytest.raises(InvalidStatus) as refused:
            await frames(url(stream, f"cursor={first[0].seq}"), 1)
        body = json.loads(refused.value.response.body or b"{}")
        assert refused.value.response.status_code == 400 and body["error"] == "CursorTooOld"
        # Trimming may go on between reading the floor and asking: the floor only rises.
        named = re.search(r"retention floor, seq (\d+)", body["message"])
        assert named is not None and int(named.group(1)) >= floor


async def test_zstd_with_the_dictionary_getzstddictionary_serves(stream: Stream) -> None:
    entries = stream.add(10)
    async with httpx.AsyncClient() as http:
        response = await http.get(f"{stream.url}/xrpc/network.bsky.jetstream.getZstdDictionary")
        missing = await http.get(
            f"{stream.url}/xrpc/network.bsky.jetstream.getZstdDictionary", params={"id": 5}
        )
    assert missing.status_code == 400 and missing.json()["error"] == "DictionaryNotFound"
    dictionary = zstandard.ZstdCompressionDict(response.content)
    unzip = zstandard.ZstdDecompressor(dict_data=dictionary)
    query = f"cursor={entries[0].seq}&zstdDictionary={dictionary.dict_id()}"
    got = await frames(url(stream, query), 10, decode=lambda b: json.loads(unzip.decompress(b)))
    assert [f["payload"]["seq"] for f in got] == [e.seq for e in entries]


async def test_the_subprotocol_is_echoed_and_client_messages_close_the_stream(
    stream: Stream,
) -> None:
    async with open_stream(url(stream), subprotocols=["xrpc.v1.json"]) as ws:
        assert ws.subprotocol == "xrpc.v1.json"
        await ws.send("hello")
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ("kinds=post", "InvalidRequest"),
        ("kinds=identity&collections=app.bsky.feed.post", "InvalidRequest"),
        ("wantedDids=did:plc:aaaaaaaaaaaaaaaaaaaaaaaa", "InvalidRequest"),
        ("compress=true", "InvalidRequest"),
        ("collections=app.*", "InvalidRequest"),
        ("dids=nobody", "InvalidRequest"),
        ("maxMessageSizeBytes=-1", "InvalidRequest"),
        ("maxMessageSizeBytes=%C2%B2", "InvalidRequest"),  # a digit to isdigit(), not int()
        ("maxMessageSizeBytes=" + "9" * 5000, "InvalidRequest"),  # past int()'s digit limit
        ("cursor=soon", "InvalidRequest"),
        ("zstdDictionary=5", "UnknownZstdDictionary"),
    ],
)
async def test_bad_parameters_are_refused_before_the_upgrade(
    stream: Stream, query: str, error: str
) -> None:
    with pytest.raises(InvalidStatus) as refused:
        await frames(url(stream, query), 1)
    assert refused.value.response.status_code == 400
    assert json.loads(refused.value.response.body or b"{}")["error"] == error


async def test_plain_http_and_wrong_verbs_get_xrpc_error_bodies(stream: Stream) -> None:
    async with httpx.AsyncClient(base_url=stream.url) as http:
        over_http = await http.get(f"/xrpc/{NSID}")
        posted = await http.post("/xrpc/network.bsky.jetstream.getZstdDictionary")
    assert (over_http.status_code, posted.status_code) == (404, 405)
    for answer in (over_http, posted):
        assert set(answer.json()) == {"error", "message"}, answer.text

"""The feed-generator SDK's parts in-process: config, the `new` command, loading a module,
the Jetstream event parser, the feed function into batches, and getFeedSkeleton's pages,
cursors and errors over the real store."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.server import ServerConnection, serve

from atcore.cid import CID
from atcore.frames import (
    AccountEvent,
    CommitEvent,
    IdentityEvent,
    InfoEvent,
    RepoOp,
    SyncEvent,
    encode_error,
    encode_frame,
)
from feedgen.api import cursor_tag, decode_cursor, encode_cursor
from feedgen.app import FeedModuleError, create_app, load_feed
from feedgen.changes import AccountGone, AccountStatus, Deleted, Event
from feedgen.config import ConfigError, FeedgenConfig
from feedgen.firehose import SUBSCRIBE_REPOS, FirehoseSource
from feedgen.indexer import to_batch
from feedgen.jetstream_source import parse_event
from feedgen.sdk import Feed, Page, Ranked, Record
from feedgen.store import Batch, Item, SqlReader
from skyloft.cli import main
from tests.feedgen.postgres import fresh_database

DID = "did:plc:ewvi7nxzyoun6zhxrhs64oiz"


def config(tmp_path: Path, **env: str) -> FeedgenConfig:
    settings = {"FEEDGEN_PUBLISHER_DID": DID, "FEEDGEN_DEV_MODE": "true", **env}
    return FeedgenConfig.load(settings, data_dir=str(tmp_path / "fg"), port=4321)


def test_config(tmp_path: Path) -> None:
    dev = config(tmp_path, FEEDGEN_SUBSCRIPTION_ENDPOINT="http://127.0.0.1:2470")
    assert dev.service_did == "did:web:localhost%3A4321"
    assert dev.service_url == "http://localhost:4321"
    assert dev.relay_url == "ws://127.0.0.1:2470"
    nats = config(tmp_path, FEEDGEN_NATS_URL="nats://127.0.0.1:4222")
    assert (nats.nats_stream, nats.nats_subject) == ("ATPROTO", "atproto")
    prod = FeedgenConfig.load({"FEEDGEN_PUBLISHER_DID": DID, "FEEDGEN_HOSTNAME": "feed.example"})
    assert (prod.service_did, prod.service_url) == ("did:web:feed.example", "https://feed.example")
    for env in (
        {"FEEDGEN_PUBLISHER_DID": "alice"},
        {"FEEDGEN_DEV_MODE": "maybe"},
        {"FEEDGEN_SUBSCRIPTION_ENDPOINT": "ftp://relay"},
        {"FEEDGEN_SERVICE_DID": "feed"},
        {"FEEDGEN_NATS_URL": "http://127.0.0.1:4222"},
        {"FEEDGEN_NATS_URL": "nats://127.0.0.1:4222", "FEEDGEN_JETSTREAM_URL": "ws://x"},
    ):
        with pytest.raises(ConfigError):
            config(tmp_path, **env)
    with pytest.raises(ConfigError, match="FEEDGEN_HOSTNAME"):
        FeedgenConfig.load({"FEEDGEN_PUBLISHER_DID": DID})


def test_new_writes_a_module_that_serves(tmp_path: Path) -> None:
    assert main(["feedgen", "new", "cats-feed", "--dir", str(tmp_path)]) == 0
    feed = load_feed(str(tmp_path / "cats_feed.py"))
    assert feed.name == "cats-feed" and feed.selector is not None
    assert main(["feedgen", "new", "cats-feed", "--dir", str(tmp_path)]) == 1
    assert main(["feedgen", "new", "Bad Name", "--dir", str(tmp_path)]) == 2


def test_load_feed_refuses_modules_without_a_feed(tmp_path: Path) -> None:
    (tmp_path / "nofeed.py").write_text("x = 1\n")
    with pytest.raises(FeedModuleError, match="defines no"):
        load_feed(str(tmp_path / "nofeed.py"))
    with pytest.raises(FeedModuleError, match="cannot import"):
        load_feed("no_such_module_anywhere")


def test_jetstream_events() -> None:
    commit = {"operation": "create", "collection": "app.bsky.feed.post", "rkey": "3k"}
    event = parse_event(
        {
            "did": DID,
            "time_us": 17,
            "kind": "commit",
            "commit": {**commit, "record": {"text": "hi"}, "cid": "bafy"},
        }
    )
    assert event is not None and event.position == 17
    assert event.changes == [Record(DID, "app.bsky.feed.post", "3k", "bafy", {"text": "hi"}, 17)]
    deleted = parse_event(
        {"did": DID, "time_us": 18, "kind": "commit", "commit": {**commit, "operation": "delete"}}
    )
    assert deleted is not None
    assert deleted.changes == [Deleted(f"at://{DID}/app.bsky.feed.post/3k")]
    gone = {"active": False, "status": "deleted"}
    account = parse_event({"did": DID, "time_us": 19, "kind": "account", "account": gone})
    assert account is not None and account.changes == [AccountStatus(DID, False), AccountGone(DID)]
    for status, active in (({"active": False, "status": "takendown"}, False), ({}, True)):
        event = parse_event({"did": DID, "time_us": 19, "kind": "account", "account": status})
        assert event is not None and event.changes == [AccountStatus(DID, active)]
    for junk in (None, [], {"did": 1}, {"did": DID, "time_us": "x"}):
        assert parse_event(junk) is None
    odd = parse_event({"did": DID, "time_us": 20, "kind": "commit", "commit": {"rkey": 5}})
    assert odd is not None and odd.changes == []


def test_feed_function_decides_and_its_failures_skip_the_record(
    caplog: pytest.LogCaptureFixture,
) -> None:
    feed = Feed("t")

    @feed.select
    def select(record: Record) -> float | None:
        text = record.value["text"]  # a KeyError for records without text: a builder's bug
        return 5.0 if "cat" in text else None

    def post(rkey: str, value: dict[str, object]) -> Record:
        return Record(DID, "app.bsky.feed.post", rkey, "bafy", value, 1)

    batch = Batch([], [], [])
    with caplog.at_level(logging.ERROR):
        to_batch(
            feed, [post("a", {"text": "cat"}), post("b", {"text": "dog"}), post("c", {})], batch
        )
    assert [item.uri for item in batch.puts] == [post("a", {}).uri]
    # An update that stops matching leaves the feed; so does the record that failed.
    assert batch.deletes == [post("b", {}).uri, post("c", {}).uri]
    assert "the feed function failed" in caplog.text


def test_cursors_round_trip_and_refuse_others() -> None:
    tag = cursor_tag("at://x/app.bsky.feed.generator/a", None)
    entry = Ranked(1733590000123456.0, f"at://{DID}/app.bsky.feed.post/3k")
    assert decode_cursor(encode_cursor(entry, tag), tag) == entry
    other = cursor_tag("at://x/app.bsky.feed.generator/b", None)
    assert cursor_tag("at://x/app.bsky.feed.generator/a", DID) != tag
    with pytest.raises(Exception, match="another feed"):
        decode_cursor(encode_cursor(entry, other), tag)


@pytest.fixture(params=["sqlite", "postgres"])
async def served(
    tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    feed = Feed("cats")
    feed.select(lambda record: 1.0)
    # Nothing listens on port 1: the subscription retries in the background meanwhile.
    env = {"FEEDGEN_SUBSCRIPTION_ENDPOINT": "ws://127.0.0.1:1"}
    if request.param == "postgres":
        server = request.getfixturevalue("postgres")
        env["FEEDGEN_DATABASE_URL"] = fresh_database(server, "pages")
    settings = config(tmp_path, **env)
    app = create_app(settings, feed, validate_output=True)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://fg.test") as client:
            yield client, app.state.ctx


async def test_paths_it_does_not_serve_get_xrpc_error_bodies(
    served: tuple[httpx.AsyncClient, Any],
) -> None:
    client, _ = served
    # A newline is no NSID character, and Starlette's path pattern does not match it either.
    for answer in (await client.get("/xrpc/%0A0"), await client.post("/")):
        assert answer.status_code in (404, 405)
        assert set(answer.json()) == {"error", "message"}, answer.text


async def test_pages_are_stable_and_complete(
    served: tuple[httpx.AsyncClient, Any],
) -> None:
    client, ctx = served
    uris = [f"at://{DID}/app.bsky.feed.post/3k{n:02d}" for n in range(7)]
    # Ties in rank (n // 3) are broken by the URI, so every page boundary is exact.
    items = [Item(uri, DID, "app.bsky.feed.post", None, n // 3, True) for n, uri in enumerate(uris)]
    await ctx.store.write(Batch(items, [], [], None))
    feed_uri = f"at://{DID}/app.bsky.feed.generator/cats"
    seen: list[str] = []
    cursor = None
    while True:
        params = {"feed": feed_uri, "limit": 3, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/xrpc/app.bsky.feed.getFeedSkeleton", params=params)).json()
        seen += [entry["post"] for entry in page["feed"]]
        cursor = page.get("cursor")
        if cursor is None:
            break
    assert seen == sorted(uris, key=lambda uri: (uris.index(uri) // 3, uri), reverse=True)

    other = "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa"
    theirs = Item(f"at://{other}/app.bsky.feed.post/3k", other, "app.bsky.feed.post", None, 9, True)
    await ctx.store.write(Batch([theirs], [], []))

    async def skeleton() -> list[str]:
        page = await client.get("/xrpc/app.bsky.feed.getFeedSkeleton", params={"feed": feed_uri})
        return [entry["post"] for entry in page.json()["feed"]]

    # An account not active is hidden, then shown again: its records stay stored meanwhile.
    await ctx.store.write(Batch([], [], [], statuses=[(other, False)]))
    assert theirs.uri not in await skeleton()
    await ctx.store.write(Batch([], [], [], statuses=[(other, True), (DID, False)]))
    assert await skeleton() == [theirs.uri]
    await ctx.store.write(Batch([], [], [], statuses=[(DID, True)]))
    assert len(await skeleton()) == len(uris) + 1
    # A deleted account takes all its records out of the feed, and only its own.
    await ctx.store.write(Batch([], [], [DID]))
    assert await skeleton() == [theirs.uri]

    # Personalised pages leave out likes by hidden accounts and posts of hidden accounts.
    like = "app.bsky.feed.like"
    likes = [
        Item(f"at://{DID}/{like}/3l1", DID, like, theirs.uri, 1, False),
        Item(f"at://{other}/{like}/3l2", other, like, uris[0], 2, False),
    ]
    await ctx.store.write(Batch(likes, [], []))

    def liked(reader: SqlReader) -> list[str]:
        return [r.uri for r in reader.ranked_subjects(like, None, Page(10))]

    assert await ctx.store.read(liked) == [uris[0], theirs.uri]
    await ctx.store.write(Batch([], [], [], statuses=[(other, False)]))
    assert await ctx.store.read(liked) == []  # other's like, and the like of other's post

    for params, status in (
        ({"feed": feed_uri, "limit": 0}, 400),
        ({"feed": feed_uri, "limit": 101}, 400),
        ({"feed": "not a uri"}, 400),
        ({}, 400),
    ):
        response = await client.get("/xrpc/app.bsky.feed.getFeedSkeleton", params=params)
        assert response.status_code == status, response.text
        assert "error" in response.json()
    basic = {"authorization": "Basic YTpi"}
    response = await client.get(
        "/xrpc/app.bsky.feed.getFeedSkeleton", params={"feed": feed_uri}, headers=basic
    )
    assert response.status_code == 401
    described = await client.get("/xrpc/app.bsky.feed.describeFeedGenerator")
    assert described.json() == {"did": "did:web:localhost%3A4321", "feeds": [{"uri": feed_uri}]}


async def test_frames_the_feed_does_not_read_are_passed_over_by_seq() -> None:
    """#identity, #sync and commits touching none of the feed's collections only move the
    cursor, unchecked (their blocks here are no CAR at all); a commit touching the feed's
    collection and an #account are decoded and checked as before."""
    source = FirehoseSource("ws://unused", frozenset({"app.bsky.feed.post"}), None)
    link = CID.decode("bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm")
    now = "2024-01-01T00:00:00.000Z"

    def commit(seq: int, *paths: str) -> bytes:
        ops = [RepoOp("create", path, link) for path in paths]
        return encode_frame(CommitEvent(seq, DID, link, "3l1", None, b"not a car", ops, now))

    passed = {
        1: encode_frame(IdentityEvent(1, DID, now, "alice.test")),
        2: encode_frame(SyncEvent(2, DID, b"not a car", "3l1", now)),
        3: commit(3, "app.bsky.feed.like/3l1", "app.bsky.graph.follow/3l2"),
    }
    for seq, frame in passed.items():
        assert source.passed_over(frame) == seq
        assert await source.event(frame) == Event(seq, ())
    read = {
        4: commit(4, "app.bsky.feed.like/3l1", "app.bsky.feed.post/3l2"),
        5: encode_frame(AccountEvent(5, DID, now, False, "takendown")),
        6: encode_frame(InfoEvent("OutdatedCursor")),
        7: encode_error("FutureCursor"),
        8: b"\xa1not a frame",
    }
    for frame in read.values():
        assert source.passed_over(frame) is None
    assert await source.event(read[4]) == Event(4, [])  # checked: no CAR, so dropped
    assert source.dropped == 1
    assert await source.event(read[5]) == Event(5, [AccountStatus(DID, False)])
    assert await source.event(read[6]) is None


async def test_a_reset_relay_is_followed_live() -> None:
    """A relay answering the stored cursor with FutureCursor (its log was reset) is read live
    from the next connection on, not asked for that cursor forever; an undecodable frame is
    skipped, not a reason to reconnect."""
    paths: list[str] = []

    async def relay(ws: ServerConnection) -> None:
        assert ws.request is not None
        paths.append(ws.request.path)
        await ws.send(b"\xa1not a frame")  # skipped: asking again would bring it back
        await ws.send(encode_error("FutureCursor", "cursor in the future"))

    async with serve(relay, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        source = FirehoseSource(f"ws://127.0.0.1:{port}", frozenset({"app.bsky.feed.post"}), None)
        for _ in range(2):
            with pytest.raises(ConnectionError, match="FutureCursor"):
                async for _event in source.events(42):
                    pass
    assert paths == [f"{SUBSCRIBE_REPOS}?cursor=42", SUBSCRIBE_REPOS]
    assert source.dropped == 2

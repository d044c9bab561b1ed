"""Indexing signed commits from the firehose and reading them back through the lexicon-checked
read API: counts stay exact through creates, updates and deletes; forged commits and records
that break their lexicon are not indexed; #account hides and restores an account; the cursor
survives a restart; blocks hide content both ways; viewer state follows service-auth tokens."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from appview.config import AppviewConfig, ConfigError
from appview.db import index, schema_version
from appview.db.dialect import POSTGRES, SQLITE
from appview.db.schema import MIGRATIONS, SchemaTooNew
from atcore.frames import AccountEvent
from atcore.identity.plc_client import PlcClient
from atcore.keys import generate_k256
from tests.appview.conftest import appview_config, serve_appview
from tests.relay.fake_pds import TIME, FakeAccount, FakePds, post

Net = tuple[FakePds, str, PlcClient]


def ref(account: FakeAccount, event: Any, path: str) -> dict[str, str]:
    (op,) = [op for op in event.ops if op.path == path]
    return {"uri": f"at://{account.did}/{path}", "cid": op.cid.encode()}


def record(collection: str, **fields: Any) -> dict[str, Any]:
    return {"$type": collection, "createdAt": TIME, **fields}


async def accounts(net: Net, *names: str) -> list[FakeAccount]:
    upstream, url, plc = net
    return [upstream.add(await FakeAccount.create(plc, url, f"{n}.test")) for n in names]


async def test_counts_stay_exact_through_creates_updates_and_deletes(
    tmp_path: Path, plc_url: str, network: Net
) -> None:
    upstream, url, _ = network
    alice, bob = await accounts(network, "alice", "bob")
    async with serve_appview(appview_config(tmp_path, plc_url, url), upstream) as av:
        first = await av.write(alice, {"app.bsky.feed.post/3kaaaaaaaaaa2": post("hello")})
        hello = ref(alice, first, "app.bsky.feed.post/3kaaaaaaaaaa2")
        await av.write(
            bob,
            {
                "app.bsky.feed.like/3kaaaaaaaaaa2": record("app.bsky.feed.like", subject=hello),
                "app.bsky.feed.repost/3kaaaaaaaaaa2": record("app.bsky.feed.repost", subject=hello),
                "app.bsky.graph.follow/3kaaaaaaaaaa2": record(
                    "app.bsky.graph.follow", subject=alice.did
                ),
                "app.bsky.feed.post/3kaaaaaaaaaa3": {
                    **post("a reply"),
                    "reply": {"root": hello, "parent": hello},
                },
                "app.bsky.feed.post/3kaaaaaaaaaa4": {
                    **post("a quote"),
                    "embed": {"$type": "app.bsky.embed.record", "record": hello},
                },
            },
        )
        (view,) = (await av.ok("app.bsky.feed.getPosts", uris=[hello["uri"]]))["posts"]
        counts = [view[k] for k in ("likeCount", "repostCount", "replyCount", "quoteCount")]
        assert counts == [1, 1, 1, 1]
        profile = await av.ok("app.bsky.actor.getProfile", actor=alice.did)
        assert (profile["followersCount"], profile["postsCount"]) == (1, 1)
        bob_profile = await av.ok("app.bsky.actor.getProfile", actor=bob.did)
        assert (bob_profile["followsCount"], bob_profile["postsCount"]) == (1, 2)
        reasons = await av.ctx.db.read(
            lambda c: sorted(r for (r,) in c.execute("SELECT reason FROM notification"))
        )
        assert reasons == ["follow", "like", "quote", "reply", "repost"]

        # An update of the like (same path) must not count twice; deletes undo each count.
        await av.write(
            bob,
            {"app.bsky.feed.like/3kaaaaaaaaaa2": record("app.bsky.feed.like", subject=hello)},
        )
        (view,) = (await av.ok("app.bsky.feed.getPosts", uris=[hello["uri"]]))["posts"]
        assert view["likeCount"] == 1
        await av.write(
            bob,
            {
                "app.bsky.feed.like/3kaaaaaaaaaa2": None,
                "app.bsky.feed.post/3kaaaaaaaaaa3": None,
                "app.bsky.graph.follow/3kaaaaaaaaaa2": None,
            },
        )
        (view,) = (await av.ok("app.bsky.feed.getPosts", uris=[hello["uri"]]))["posts"]
        counts = [view[k] for k in ("likeCount", "repostCount", "replyCount", "quoteCount")]
        assert counts == [0, 1, 0, 1]
        profile = await av.ok("app.bsky.actor.getProfile", actor=alice.did)
        assert profile["followersCount"] == 0
        reasons = await av.ctx.db.read(
            lambda c: sorted(r for (r,) in c.execute("SELECT reason FROM notification"))
        )
        assert reasons == ["quote", "repost"]


# Commits are checked on a worker process (a forged one fails with the cached key there, and
# again on the event loop after the DID document is refreshed), or all on the event loop.
@pytest.mark.parametrize("workers", ["1", "0"])
async def test_forged_commits_and_invalid_records_are_not_indexed(
    tmp_path: Path, plc_url: str, network: Net, workers: str
) -> None:
    upstream, url, _ = network
    (alice,) = await accounts(network, "alice")
    config = appview_config(tmp_path, plc_url, url, BSKY_INDEX_WORKERS=workers)
    async with serve_appview(config, upstream) as av:
        # Forged: not in the repo the account's PDS serves (its export), nor indexed.
        forged = alice.commit(
            {"app.bsky.feed.post/3kaaaaaaaaaa2": post("forged")}, key=generate_k256(), advance=False
        )
        await av.emit(forged)
        assert av.ctx.ingest is not None and av.ctx.ingest.unverified == 1
        bad = {"$type": "app.bsky.feed.post", "text": 42, "createdAt": TIME}
        await av.write(
            alice,
            {
                "app.bsky.feed.post/3kaaaaaaaaaa3": bad,
                "app.bsky.feed.post/3kaaaaaaaaaa4": post("fine"),
            },
        )
        feed = (await av.ok("app.bsky.feed.getAuthorFeed", actor=alice.did))["feed"]
        assert [item["post"]["record"]["text"] for item in feed] == ["fine"]
        assert await av.ctx.db.read(index.skipped) == {"app.bsky.feed.post": 1}


async def test_trusting_the_relay_skips_signature_checks(
    tmp_path: Path, plc_url: str, network: Net
) -> None:
    upstream, url, _ = network
    (alice,) = await accounts(network, "alice")
    config = appview_config(tmp_path, plc_url, url, BSKY_TRUST_RELAY="true")
    async with serve_appview(config, upstream) as av:
        forged = alice.commit(
            {"app.bsky.feed.post/3kaaaaaaaaaa2": post("trusted")}, key=generate_k256()
        )
        await av.emit(forged)
        feed = (await av.ok("app.bsky.feed.getAuthorFeed", actor=alice.did))["feed"]
        assert len(feed) == 1


async def test_inactive_accounts_are_hidden_and_come_back(
    tmp_path: Path, plc_url: str, network: Net
) -> None:
    upstream, url, _ = network
    alice, bob = await accounts(network, "alice", "bob")
    async with serve_appview(appview_config(tmp_path, plc_url, url), upstream) as av:
        event = await av.write(alice, {"app.bsky.feed.post/3kaaaaaaaaaa2": post("here")})
        hello = ref(alice, event, "app.bsky.feed.post/3kaaaaaaaaaa2")
        await av.emit(AccountEvent(0, alice.did, TIME, active=False, status="takendown"))
        response = await av.get("app.bsky.actor.getProfile", actor=alice.did)
        assert (response.status_code, response.json()["error"]) == (400, "AccountTakedown")
        assert (await av.ok("app.bsky.feed.getPosts", uris=[hello["uri"]]))["posts"] == []
        await av.emit(AccountEvent(0, alice.did, TIME, active=True))
        assert len((await av.ok("app.bsky.feed.getPosts", uris=[hello["uri"]]))["posts"]) == 1
        await av.emit(AccountEvent(0, bob.did, TIME, active=False, status="deactivated"))
        response = await av.get("app.bsky.actor.getProfile", actor=bob.did)
        assert response.json()["error"] == "AccountDeactivated"


async def test_restart_resumes_from_the_saved_cursor(
    tmp_path: Path, plc_url: str, network: Net
) -> None:
    upstream, url, _ = network
    (alice,) = await accounts(network, "alice")
    path = "app.bsky.actor.profile/self"
    config = appview_config(tmp_path, plc_url, url)
    async with serve_appview(config, upstream) as av:
        await av.write(alice, {path: record("app.bsky.actor.profile", displayName="One")})
    # Written while the appview is down: an update, then a delete and a new post.
    await upstream.emit(alice.commit({path: record("app.bsky.actor.profile", displayName="Two")}))
    await upstream.emit(alice.commit({path: None}))
    last = await upstream.emit(alice.commit({"app.bsky.feed.post/3kaaaaaaaaaa2": post("p")}))
    async with serve_appview(config, upstream) as av:
        await av.applied(last)
        profile = await av.ok("app.bsky.actor.getProfile", actor=alice.did)
        assert "displayName" not in profile and profile["postsCount"] == 1
        assert await av.ctx.db.read(index.cursor, "repos") == last


async def test_blocks_hide_content_both_ways_and_viewer_state(
    tmp_path: Path, plc_url: str, network: Net
) -> None:
    upstream, url, _ = network
    alice, bob, carol = await accounts(network, "alice", "bob", "carol")
    async with serve_appview(appview_config(tmp_path, plc_url, url), upstream) as av:
        event = await av.write(alice, {"app.bsky.feed.post/3kaaaaaaaaaa2": post("root")})
        root = ref(alice, event, "app.bsky.feed.post/3kaaaaaaaaaa2")
        reply = {**post("from bob"), "reply": {"root": root, "parent": root}}
        await av.write(bob, {"app.bsky.feed.post/3kaaaaaaaaaa2": reply})
        follow = record("app.bsky.graph.follow", subject=alice.did)
        await av.write(carol, {"app.bsky.graph.follow/3kaaaaaaaaaa2": follow})
        like = record("app.bsky.feed.like", subject=root)
        await av.write(carol, {"app.bsky.feed.like/3kaaaaaaaaaa2": like})

        thread = (await av.ok("app.bsky.feed.getPostThread", carol, uri=root["uri"]))["thread"]
        assert [r["post"]["author"]["did"] for r in thread["replies"]] == [bob.did]
        assert thread["post"]["viewer"]["like"].startswith(f"at://{carol.did}/")
        assert thread["post"]["author"]["viewer"]["following"].startswith(f"at://{carol.did}/")
        timeline = (await av.ok("app.bsky.feed.getTimeline", carol))["feed"]
        assert [item["post"]["uri"] for item in timeline] == [root["uri"]]

        block = record("app.bsky.graph.block", subject=carol.did)
        await av.write(bob, {"app.bsky.graph.block/3kaaaaaaaaaa2": block})
        thread = (await av.ok("app.bsky.feed.getPostThread", carol, uri=root["uri"]))["thread"]
        # As the reference: a reply across a block with the viewer shows as a #blockedPost.
        [gap] = thread["replies"]
        assert gap["$type"] == "app.bsky.feed.defs#blockedPost" and gap["blocked"] is True
        assert gap["author"] == {"did": bob.did, "viewer": {"blockedBy": True}}
        response = await av.get("app.bsky.feed.getAuthorFeed", carol, actor=bob.did)
        assert response.json()["error"] == "BlockedByActor"
        profile = await av.ok("app.bsky.actor.getProfile", carol, actor=bob.did)
        assert profile["viewer"]["blockedBy"] is True
        public = (await av.ok("app.bsky.feed.getPostThread", uri=root["uri"]))["thread"]
        assert len(public["replies"]) == 1


async def test_blocks_between_third_parties_apply_for_every_viewer(
    tmp_path: Path, plc_url: str, network: Net
) -> None:
    upstream, url, _ = network
    alice, bob, carol = await accounts(network, "alice", "bob", "carol")
    async with serve_appview(appview_config(tmp_path, plc_url, url), upstream) as av:
        block = record("app.bsky.graph.block", subject=bob.did)
        await av.write(alice, {"app.bsky.graph.block/3kaaaaaaaaaa2": block})
        event = await av.write(alice, {"app.bsky.feed.post/3kaaaaaaaaaa3": post("root")})
        root = ref(alice, event, "app.bsky.feed.post/3kaaaaaaaaaa3")
        reply = {**post("bob answers"), "reply": {"root": root, "parent": root}}
        quote = {**post("bob quotes"), "embed": {"$type": "app.bsky.embed.record", "record": root}}
        event = await av.write(
            bob,
            {"app.bsky.feed.post/3kaaaaaaaaaa2": reply, "app.bsky.feed.post/3kaaaaaaaaaa3": quote},
        )
        answer = ref(bob, event, "app.bsky.feed.post/3kaaaaaaaaaa2")
        quoting = ref(bob, event, "app.bsky.feed.post/3kaaaaaaaaaa3")
        for viewer in (carol, None):
            thread = (await av.ok("app.bsky.feed.getPostThread", viewer, uri=root["uri"]))["thread"]
            assert thread["replies"] == []
            thread = await av.ok("app.bsky.feed.getPostThread", viewer, uri=answer["uri"])
            assert thread["thread"]["parent"]["$type"] == "app.bsky.feed.defs#blockedPost"
            posts = await av.ok("app.bsky.feed.getPosts", viewer, uris=[quoting["uri"]])
            embedded = posts["posts"][0]["embed"]["record"]
            assert embedded["$type"] == "app.bsky.embed.record#viewBlocked"
            feed = (await av.ok("app.bsky.feed.getAuthorFeed", viewer, actor=bob.did))["feed"]
            [replied] = [item for item in feed if item["post"]["uri"] == answer["uri"]]
            assert replied["reply"]["parent"]["$type"] == "app.bsky.feed.defs#blockedPost"
            assert replied["reply"]["root"]["$type"] == "app.bsky.feed.defs#blockedPost"


@pytest.mark.parametrize(
    ("nsid", "params"),
    [
        ("app.bsky.actor.getProfile", {}),
        ("app.bsky.feed.getAuthorFeed", {"actor": "did:plc:x", "limit": "0"}),
        ("app.bsky.feed.getAuthorFeed", {"actor": "did:plc:x", "cursor": "nonsense"}),
        ("app.bsky.feed.getAuthorFeed", {"actor": "did:plc:x", "filter": "everything"}),
        ("app.bsky.feed.getPostThread", {"uri": "not a uri"}),
        ("app.bsky.feed.getPostThread", {"uri": "at://did:plc:x/app.bsky.feed.post/1"}),
        ("app.bsky.feed.getLikes", {"uri": "at://did:plc:x/app.bsky.feed.post/1", "limit": "101"}),
        ("app.bsky.graph.getFollowers", {"actor": "nobody.invalid"}),
    ],
)
async def test_bad_parameters_are_4xx(
    tmp_path: Path, plc_url: str, network: Net, nsid: str, params: dict[str, str]
) -> None:
    upstream, url, _ = network
    async with serve_appview(appview_config(tmp_path, plc_url, url), upstream) as av:
        response = await av.client.get(f"/xrpc/{nsid}", params=params)
        assert response.status_code == 400, response.text
        assert response.json()["error"]


async def test_auth_is_checked(tmp_path: Path, plc_url: str, network: Net) -> None:
    upstream, url, _ = network
    (alice,) = await accounts(network, "alice")
    async with serve_appview(appview_config(tmp_path, plc_url, url), upstream) as av:
        nsid = "app.bsky.feed.getTimeline"
        assert (await av.client.get(f"/xrpc/{nsid}")).status_code == 401
        for token in (
            av.token(alice, "app.bsky.actor.getProfile"),
            av.token(alice, nsid, aud="did:web:elsewhere.test"),
            av.token(alice, nsid, exp=1),
        ):
            headers = {"authorization": f"Bearer {token}"}
            response = await av.client.get(f"/xrpc/{nsid}", headers=headers)
            assert response.status_code == 401, response.text
        assert (await av.ok(nsid, alice))["feed"] == []


async def test_newer_schema_is_refused(tmp_path: Path, plc_url: str, network: Net) -> None:
    upstream, url, _ = network
    config = appview_config(tmp_path, plc_url, url)
    async with serve_appview(config, upstream) as av:
        assert schema_version(config) == len(MIGRATIONS)
        dialect = POSTGRES if config.postgres_url else SQLITE
        await av.ctx.db.write(dialect.set_version, len(MIGRATIONS) + 1)
    with pytest.raises(SchemaTooNew, match="newer than this code"):
        schema_version(config)
    with pytest.raises(SchemaTooNew, match="newer than this code"):
        async with serve_appview(config, upstream):
            pass


async def test_did_document(tmp_path: Path, plc_url: str, network: Net) -> None:
    upstream, url, _ = network
    async with serve_appview(appview_config(tmp_path, plc_url, url), upstream) as av:
        doc = (await av.client.get("/.well-known/did.json")).json()
        assert doc["id"] == av.ctx.config.did
        assert {s["id"]: s["type"] for s in doc["service"]}["#bsky_appview"] == "BskyAppView"
        assert doc["verificationMethod"][0]["id"] == f"{doc['id']}#atproto"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"BSKY_DB_POSTGRES_URL": "mysql://x/y"}, "BSKY_DB_POSTGRES_URL must be a postgresql://"),
        ({"BSKY_DB_POSTGRES_SCHEMA": "a;drop"}, "BSKY_DB_POSTGRES_SCHEMA must be"),
        ({"BSKY_DB_POSTGRES_SCHEMA": "x" * 64}, "BSKY_DB_POSTGRES_SCHEMA must be"),
    ],
)
def test_bad_postgres_settings_are_refused(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        AppviewConfig.load(env, data_dir=str(tmp_path))


def test_serve_stops_with_one_line_when_postgres_is_unreachable(tmp_path: Path) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    env = {**os.environ, "BSKY_DB_POSTGRES_URL": f"postgresql://postgres@127.0.0.1:{port}/test"}
    command = [sys.executable, "-m", "skyloft", "appview", "serve", "--port", "0"]
    done = subprocess.run(
        [*command, "--data-dir", str(tmp_path)], env=env, capture_output=True, timeout=60
    )
    assert done.returncode == 2
    (line,) = done.stderr.decode().splitlines()
    assert line.startswith("skyloft appview serve: BSKY_DB_POSTGRES_URL: connection failed")

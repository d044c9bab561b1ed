"""Feed generators and list feeds through the appview, every response checked against its
lexicon: generator views (likes, viewer like, isOnline/isValid from a real generator's
describeFeedGenerator), actor feeds, getFeed against a real Starlette feed generator that
verifies the viewer's service-auth JWT with atcore.service_auth (skeleton hydrated, reposts
by `reason`, missing and blocked posts dropped, feedContext kept), its failures mapped as the
reference maps them, forged tokens refused, and getListFeed."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from atcore.identity.plc import did_for_genesis, genesis_op, sign_operation
from atcore.identity.plc_client import PlcClient
from atcore.identity.resolver import IdentityResolver
from atcore.jwt import encode_es
from atcore.keys import PrivateKey, generate_k256
from atcore.service_auth import verify_service_jwt
from atcore.xrpc.errors import AuthRequired
from tests.appview.conftest import Appview, appview_config, serve_appview
from tests.appview.test_appview_index import accounts, record
from tests.appview.test_appview_reads import posts_by
from tests.relay.fake_pds import FakeAccount, FakePds, post
from tests.servers import serving_in_loop

Net = tuple[FakePds, str, PlcClient]
SKELETON = "app.bsky.feed.getFeedSkeleton"
FEED = "app.bsky.feed.getFeed"


@dataclass
class FeedGenerator:
    """A feed generator service: answers getFeedSkeleton with `items` for a caller whose
    service-auth token names this service, and describes `feeds`."""

    did: str
    resolver: IdentityResolver
    items: list[dict[str, Any]] = field(default_factory=list)
    feeds: list[str] = field(default_factory=list)
    cursor: str | None = "next-page"
    callers: list[str | None] = field(default_factory=list)
    broken: bool = False

    async def skeleton(self, request: Request) -> Response:
        viewer = None
        header = request.headers.get("authorization")
        if header is not None:
            try:
                claims = await verify_service_jwt(
                    header.removeprefix("Bearer "),
                    audience=self.did,
                    lxm=SKELETON,
                    documents=self.resolver,
                )
            except AuthRequired as exc:
                return JSONResponse({"error": exc.error, "message": exc.message}, 401)
            viewer = claims.did
        self.callers.append(viewer)
        if self.broken:
            return JSONResponse({"feed": "not a list"})
        body: dict[str, Any] = {"feed": self.items}
        if self.cursor is not None:
            body["cursor"] = self.cursor
        return JSONResponse(body, headers={"content-language": "en"})

    async def describe(self, request: Request) -> Response:
        return JSONResponse({"did": self.did, "feeds": [{"uri": uri} for uri in self.feeds]})

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route(f"/xrpc/{SKELETON}", self.skeleton),
                Route("/xrpc/app.bsky.feed.describeFeedGenerator", self.describe),
            ]
        )


async def register_service(plc: PlcClient, endpoint: str) -> str:
    """A did:plc whose document names `endpoint` as its #bsky_fg service."""
    key, rotation = generate_k256(), generate_k256()
    op = genesis_op(
        signing_key=key.public_key().did_key(),
        rotation_keys=[rotation.public_key().did_key()],
        handle="feeds.test",
        pds=endpoint,
    )
    op["services"]["bsky_fg"] = {"type": "BskyFeedGenerator", "endpoint": endpoint}
    signed = sign_operation(op, rotation)
    did = did_for_genesis(signed)
    await plc.submit(did, signed)
    return did


@asynccontextmanager
async def feed_generator(plc_url: str, plc: PlcClient) -> AsyncIterator[FeedGenerator]:
    async with httpx.AsyncClient() as http:
        resolver = IdentityResolver(plc_url, http, allow_private=True)
        generator = FeedGenerator("", resolver)
        async with serving_in_loop(generator.app()) as url:
            generator.did = await register_service(plc, url)
            yield generator


def feed_token(av: Appview, viewer: FakeAccount, aud: str, key: PrivateKey | None = None) -> str:
    """A token as the viewer's PDS mints it for getFeed: aud the generator, lxm the skeleton."""
    now = int(time.time())
    claims = {"iss": viewer.did, "aud": aud, "exp": now + 60, "iat": now, "lxm": SKELETON}
    return encode_es(claims, key or viewer.key)


async def get_feed(av: Appview, token: str | None, **params: Any) -> httpx.Response:
    headers = {} if token is None else {"authorization": f"Bearer {token}"}
    return await av.client.get(f"/xrpc/{FEED}", params=params, headers=headers)


async def test_feed_generators_and_get_feed(tmp_path: Path, plc_url: str, network: Net) -> None:
    upstream, url, plc = network
    alice, bob, carol = await accounts(network, "alice", "bob", "carol")
    async with (
        feed_generator(plc_url, plc) as gen,
        serve_appview(appview_config(tmp_path, plc_url, url), upstream) as av,
    ):
        feed_uri = f"at://{alice.did}/app.bsky.feed.generator/cats"
        generator = record(
            "app.bsky.feed.generator", did=gen.did, displayName="Cats", description="cat posts"
        )
        await av.write(alice, {"app.bsky.feed.generator/cats": generator})
        like = record(
            "app.bsky.feed.like", subject={"uri": feed_uri, "cid": await cid(av, feed_uri)}
        )
        like_event = await av.write(bob, {"app.bsky.feed.like/3kbbbbbbbbbb2": like})
        assert like_event is not None

        # The generator's view, with its like and the viewer's like; offline until it
        # describes the feed.
        body = await av.ok("app.bsky.feed.getFeedGenerator", bob, feed=feed_uri)
        view = body["view"]
        assert (view["did"], view["displayName"], view["likeCount"]) == (gen.did, "Cats", 1)
        assert view["creator"]["did"] == alice.did
        assert view["viewer"]["like"] == f"at://{bob.did}/app.bsky.feed.like/3kbbbbbbbbbb2"
        assert (body["isOnline"], body["isValid"]) == (True, False)
        gen.feeds = [feed_uri]
        body = await av.ok("app.bsky.feed.getFeedGenerator", feed=feed_uri)
        assert (body["isOnline"], body["isValid"]) == (True, True)
        assert "viewer" not in body["view"]

        missing = f"at://{alice.did}/app.bsky.feed.generator/none"
        feeds = await av.ok("app.bsky.feed.getFeedGenerators", feeds=[missing, feed_uri])
        assert [f["uri"] for f in feeds["feeds"]] == [feed_uri]
        actor_feeds = await av.ok("app.bsky.feed.getActorFeeds", actor=alice.did)
        assert [f["uri"] for f in actor_feeds["feeds"]] == [feed_uri]
        assert (await av.ok("app.bsky.feed.getActorFeeds", actor=bob.did))["feeds"] == []
        response = await av.get("app.bsky.feed.getFeedGenerator", feed=missing)
        assert response.status_code == 400

        # Posts: alice's, a repost of it by carol, a post by carol whom bob then blocks.
        refs = await posts_by(
            av, alice, [("3kaaaaaaaaaa2", post("first")), ("3kaaaaaaaaaa3", post("second"))]
        )
        carols = await posts_by(av, carol, [("3kcccccccccc2", post("carol's"))])
        repost = record("app.bsky.feed.repost", subject=refs["3kaaaaaaaaaa2"])
        await av.write(carol, {"app.bsky.feed.repost/3kcccccccccc3": repost})
        repost_uri = f"at://{carol.did}/app.bsky.feed.repost/3kcccccccccc3"
        gen.items = [
            {"post": refs["3kaaaaaaaaaa3"]["uri"], "feedContext": "ctx-1"},
            {
                "post": refs["3kaaaaaaaaaa2"]["uri"],
                "reason": {
                    "$type": "app.bsky.feed.defs#skeletonReasonRepost",
                    "repost": repost_uri,
                },
            },
            {"post": f"at://{alice.did}/app.bsky.feed.post/3kaaaaaaaaaz9"},  # never written
            {"post": carols["3kcccccccccc2"]["uri"]},
        ]
        token = feed_token(av, bob, gen.did)
        response = await get_feed(av, token, feed=feed_uri)
        assert response.headers["content-language"] == "en"
        body = response.json()
        assert gen.callers[-1] == bob.did  # the viewer's token reached the generator
        assert [i["post"]["record"]["text"] for i in body["feed"]] == ["second", "first", "carol's"]
        assert body["feed"][0]["feedContext"] == "ctx-1"
        reason = body["feed"][1]["reason"]
        assert (reason["by"]["did"], reason["uri"]) == (carol.did, repost_uri)
        assert body["cursor"] == "next-page"

        await av.write(
            bob,
            {
                "app.bsky.graph.block/3kbbbbbbbbbb3": record(
                    "app.bsky.graph.block", subject=carol.did
                )
            },
        )
        body = (await get_feed(av, feed_token(av, bob, gen.did), feed=feed_uri)).json()
        # The blocked author's post and the blocked reposter's repost are gone.
        assert [i["post"]["record"]["text"] for i in body["feed"]] == ["second"]
        # Without a viewer: the generator is asked anonymously and nothing is filtered.
        response = await get_feed(av, None, feed=feed_uri, limit=2)
        assert response.status_code == 200, response.text
        assert gen.callers[-1] is None
        assert len(response.json()["feed"]) == 2
        # A cursor echoed back ends paging.
        gen.cursor = "same"
        body = (await get_feed(av, None, feed=feed_uri, cursor="same")).json()
        assert "cursor" not in body


async def cid(av: Appview, uri: str) -> str:
    return str(
        await av.ctx.db.read(
            lambda c: c.execute("SELECT cid FROM record WHERE uri = ?", (uri,)).fetchone()[0]
        )
    )


async def test_get_feed_failures(tmp_path: Path, plc_url: str, network: Net) -> None:
    upstream, url, plc = network
    alice, bob = await accounts(network, "alice", "bob")
    async with (
        feed_generator(plc_url, plc) as gen,
        serve_appview(appview_config(tmp_path, plc_url, url), upstream) as av,
    ):
        dead = await register_service(plc, "http://127.0.0.1:9")  # nothing listens there
        plain = await register_service(plc, url)
        await av.write(
            alice,
            {
                "app.bsky.feed.generator/live": record(
                    "app.bsky.feed.generator", did=gen.did, displayName="Live"
                ),
                "app.bsky.feed.generator/dead": record(
                    "app.bsky.feed.generator", did=dead, displayName="Dead"
                ),
                "app.bsky.feed.generator/nofg": record(
                    "app.bsky.feed.generator", did=alice.did, displayName="No service"
                ),
            },
        )
        live = f"at://{alice.did}/app.bsky.feed.generator/live"

        async def status(token: str | None, feed: str, **params: Any) -> tuple[int, str | None]:
            response = await get_feed(av, token, feed=feed, **params)
            return response.status_code, response.json().get("error")

        unknown = f"at://{alice.did}/app.bsky.feed.generator/nope"
        assert await status(None, unknown) == (400, "UnknownFeed")
        assert await status(None, f"at://{alice.did}/app.bsky.feed.generator/dead") == (
            502,
            "UpstreamFailure",
        )
        assert (await status(None, f"at://{alice.did}/app.bsky.feed.generator/nofg"))[0] == 400
        assert await status(None, "not-a-uri") == (400, "InvalidRequest")
        assert await status(None, live, limit=1000) == (400, "InvalidRequest")

        # A token signed by another key is refused here; one the generator refuses (wrong
        # audience) comes back with the generator's status and error name.
        forged = feed_token(av, bob, gen.did, key=generate_k256())
        assert await status(forged, live) == (401, "BadJwtSignature")
        calls = len(gen.callers)
        assert await status(feed_token(av, bob, plain), live) == (401, "BadJwtAudience")
        assert len(gen.callers) == calls
        wrong_method = av.token(bob, "app.bsky.feed.getTimeline")
        assert await status(wrong_method, live) == (401, "BadJwtLexiconMethod")

        gen.broken = True
        assert await status(None, live) == (502, "InvalidFeedResponse")


async def test_list_feed(tmp_path: Path, plc_url: str, network: Net) -> None:
    upstream, url, _ = network
    alice, bob, carol, dave = await accounts(network, "alice", "bob", "carol", "dave")
    async with serve_appview(appview_config(tmp_path, plc_url, url), upstream) as av:
        curated = record(
            "app.bsky.graph.list", name="friends", purpose="app.bsky.graph.defs#curatelist"
        )
        await av.write(alice, {"app.bsky.graph.list/3kaaaaaaaaaa2": curated})
        list_uri = f"at://{alice.did}/app.bsky.graph.list/3kaaaaaaaaaa2"
        for n, member in enumerate((bob, carol)):
            item = record("app.bsky.graph.listitem", subject=member.did, list=list_uri)
            await av.write(alice, {f"app.bsky.graph.listitem/3kaaaaaaaab{n + 2}2": item})
        bobs = await posts_by(
            av, bob, [("3kbbbbbbbbbb2", post("bob one")), ("3kbbbbbbbbbb3", post("bob two"))]
        )
        await posts_by(av, carol, [("3kcccccccccc2", post("carol one"))])
        await posts_by(av, dave, [("3kdddddddddd2", post("not a member"))])
        repost = record("app.bsky.feed.repost", subject=bobs["3kbbbbbbbbbb2"])
        await av.write(carol, {"app.bsky.feed.repost/3kcccccccccc3": repost})

        body = await av.ok("app.bsky.feed.getListFeed", list=list_uri)
        texts = sorted(i["post"]["record"]["text"] for i in body["feed"])
        assert texts == ["bob one", "bob two", "carol one"]  # posts only, no reposts
        page = await av.ok("app.bsky.feed.getListFeed", list=list_uri, limit=2)
        rest = await av.ok("app.bsky.feed.getListFeed", list=list_uri, cursor=page["cursor"])
        assert len(page["feed"]) + len(rest["feed"]) == 3

        # Members who block the list's creator drop out; so do authors the viewer blocks.
        await av.write(
            carol,
            {
                "app.bsky.graph.block/3kcccccccccc4": record(
                    "app.bsky.graph.block", subject=alice.did
                )
            },
        )
        body = await av.ok("app.bsky.feed.getListFeed", list=list_uri)
        assert sorted(i["post"]["record"]["text"] for i in body["feed"]) == ["bob one", "bob two"]
        await av.write(
            dave,
            {"app.bsky.graph.block/3kdddddddddd3": record("app.bsky.graph.block", subject=bob.did)},
        )
        assert (await av.ok("app.bsky.feed.getListFeed", dave, list=list_uri))["feed"] == []
        bad = await av.get("app.bsky.feed.getListFeed", list=list_uri, cursor="garbage")
        assert bad.status_code == 400

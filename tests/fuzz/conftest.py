"""The services under fuzzing, each built by its own create_app on a temporary data dir, with
live credentials (a session, an app-password session, a refresh token, service auth, admin)
that hostile requests may carry: authenticated 500s count too. The appview has indexed
accounts and takes service-auth JWTs from one; Jetstream has events in its log to replay."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import itertools
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from atcore.identity.plc import did_for_genesis, genesis_op, sign_operation
from atcore.identity.plc_client import PlcClient
from atcore.keys import generate_k256
from tests.fuzz import hostile, jetstream_input
from tests.fuzz.harness import Target, running
from tests.fuzz.images import IMAGES, image_paths
from tests.fuzz.indexed import indexed_accounts
from tests.fuzz.plc_ops import PlcAccount, signed_operations
from tests.fuzz.service_auth import ServiceTokens
from tests.fuzz.typed import Vocabulary
from tests.jetstream.harness import COLLECTIONS, DIDS, Stream
from tests.relay.fake_pds import FakeAccount, FakePds, serve_fake_pds
from tests.servers import running_service

PASSWORD = "correct horse battery staple"
ADMIN = "admin-secret"


def basic(user: str, password: str) -> bytes:
    return b"Basic " + base64.b64encode(f"{user}:{password}".encode())


@pytest.fixture(scope="module")
def plc_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_service("plc", tmp_path_factory.mktemp("fuzz-plc") / "data") as url:
        yield url


async def new_plc_account(client: httpx.AsyncClient) -> PlcAccount:
    key = generate_k256()
    op = genesis_op(
        signing_key=key.public_key().did_key(),
        rotation_keys=[key.public_key().did_key()],
        handle="fuzz.test",
        pds="https://pds.fuzz.test",
    )
    op = sign_operation(op, key)
    did = did_for_genesis(op)
    assert (await client.post(f"/{did}", json=op)).status_code == 200
    return PlcAccount(did, key, op)


@pytest.fixture(scope="module")
def plc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    from plc.app import create_app
    from plc.config import PlcConfig

    # Rate limits off: the signed operations would soon be refused before their validation.
    config = PlcConfig(data_dir=tmp_path_factory.mktemp("fuzz-plc-app"), rate_limits_enabled=False)

    @asynccontextmanager
    async def started() -> AsyncIterator[Target]:
        app = create_app(config)
        async with app.router.lifespan_context(app):
            target = Target(app, "plc")
            account = await new_plc_account(target.client)

            async def follow() -> None:
                """The DID's newest operation; a new DID once it is tombstoned."""
                nonlocal account
                last = await target.client.get(f"/{account.did}/log/last")
                account.head = last.json()
                if account.head.get("type") == "plc_tombstone":
                    account = await new_plc_account(target.client)

            strings = hostile.hostile_strings(lambda: [account.did, "fuzz.test"])
            target.live_strings = lambda: [account.did, "fuzz.test"]
            target.after_change = follow
            target.special["POST /{did}"] = signed_operations(lambda: account, strings)
            yield target

    with running(started) as target:
        yield target


class PdsCredentials:
    """A live account on the PDS and its credentials, made again whenever a fuzzed request
    (an admin takedown, a password change, a deletion) spoiled them."""

    def __init__(self, client: httpx.AsyncClient, service_did: str) -> None:
        self.client = client
        self.service_did = service_did
        self.numbers = itertools.count()
        self.did = self.handle = ""
        self.auth: list[bytes] = [basic("admin", "admin")]
        self.record: dict[str, str] = {}

    async def call(self, nsid: str, body: Any = None, **kw: Any) -> httpx.Response:
        verb = "GET" if body is None else "POST"
        return await self.client.request(verb, f"/xrpc/{nsid}", json=body, **kw)

    async def renew(self) -> None:
        """Fresh sessions for the account; a new account when it cannot log in any more."""
        session = await self.call(
            "com.atproto.server.createSession", {"identifier": self.did, "password": PASSWORD}
        )
        if session.status_code != 200 or session.json().get("active") is False:
            self.handle = f"fuzz{next(self.numbers)}.test"
            session = await self.call(
                "com.atproto.server.createAccount",
                {
                    "handle": self.handle,
                    "email": f"{self.handle}@example.com",
                    "password": PASSWORD,
                },
            )
            assert session.status_code == 200, session.text
        tokens = session.json()
        self.did = tokens["did"]
        bearer = {"authorization": f"Bearer {tokens['accessJwt']}"}
        app = await self.call(
            "com.atproto.server.createAppPassword", {"name": "fuzz"}, headers=bearer
        )
        auth = [b"Bearer " + tokens[k].encode() for k in ("accessJwt", "refreshJwt")]
        if app.status_code == 200:
            limited = await self.call(
                "com.atproto.server.createSession",
                {"identifier": self.did, "password": app.json()["password"]},
            )
            auth.append(b"Bearer " + limited.json()["accessJwt"].encode())
        await self.call(
            "com.atproto.server.revokeAppPassword", {"name": "fuzz"}, headers=bearer
        )  # the session made with it stays valid, and the name is free again
        service = await self.call(
            "com.atproto.server.getServiceAuth", params={"aud": self.service_did}, headers=bearer
        )
        if service.status_code == 200:
            auth.append(b"Bearer " + service.json()["token"].encode())
        self.auth = [basic("admin", "admin"), *auth]
        post = {"$type": "app.bsky.feed.post", "text": "hi", "createdAt": "2024-01-01T00:00:00Z"}
        created = await self.call(
            "com.atproto.repo.createRecord",
            {"repo": self.did, "collection": "app.bsky.feed.post", "record": post},
            headers=bearer,
        )
        assert created.status_code == 200, created.text
        self.record = created.json()

    def values(self) -> dict[str, list[str]]:
        """The account's DID, handle and newest record, as lexicon formats name them."""
        uri = self.record["uri"]
        return {
            "did": [self.did],
            "handle": [self.handle],
            "at-identifier": [self.did, self.handle],
            "at-uri": [uri],
            "cid": [self.record["cid"]],
            "record-key": [uri.rsplit("/", 1)[1]],
            "": [self.did, PASSWORD],
        }

    async def check(self) -> None:
        """After a successful change: renew unless the session still works."""
        probe = await self.call(
            "com.atproto.server.getSession", headers={"authorization": self.auth[1]}
        )
        if probe.status_code != 200 or probe.json().get("active") is False:
            await self.renew()


@pytest.fixture(scope="module")
def pds(plc_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    from pds.app import create_app
    from pds.config import PdsConfig

    env = {"PDS_DEV_MODE": "true", "PDS_HOSTNAME": "localhost", "PDS_DID_PLC_URL": plc_url}
    loaded = PdsConfig.load(env, data_dir=str(tmp_path_factory.mktemp("fuzz-pds")), port=2583)
    # No appview: proxied methods then answer as the reference PDS does without one.
    config = dataclasses.replace(loaded, appview_url=None, appview_did=None)

    @asynccontextmanager
    async def started() -> AsyncIterator[Target]:
        app = create_app(config, validate_output=True)
        async with app.router.lifespan_context(app):
            target = Target(app, "xrpc")
            creds = PdsCredentials(target.client, config.service_did)
            await creds.renew()
            target.live_strings = lambda: [creds.did, creds.handle, config.service_did]
            target.live_values = creds.values
            target.live_auth = lambda: creds.auth
            target.after_change = creds.check
            yield target

    with running(started) as target:
        yield target


@pytest.fixture(scope="module")
def relay(plc_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    from relay.app import create_app
    from relay.config import RelayConfig

    env = {"RELAY_DEV_MODE": "true", "RELAY_PLC_HOST": plc_url, "RELAY_ADMIN_PASSWORD": ADMIN}
    config = RelayConfig.load(env, data_dir=str(tmp_path_factory.mktemp("fuzz-relay")))

    @asynccontextmanager
    async def started() -> AsyncIterator[Target]:
        app = create_app(config, validate_output=True, backoff_base=0.05)
        upstream = FakePds()
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient() as http,
            serve_fake_pds(upstream) as url,
        ):
            target = Target(app, "xrpc")
            # A host the relay crawls, with an account whose repo it holds: lookups that hit.
            host = "localhost:" + url.rsplit(":", 1)[1]
            account = upstream.add(
                await FakeAccount.create(PlcClient(plc_url, http), url, "a.test")
            )
            await upstream.emit(account.genesis)
            crawl = {"hostname": host}
            r = await target.client.post("/xrpc/com.atproto.sync.requestCrawl", json=crawl)
            assert r.status_code == 200, r.text
            target.live_strings = lambda: [host, account.did, "localhost:1"]
            target.live_values = lambda: {
                "did": [account.did],
                "at-identifier": [account.did],
                "": [host, account.did],
            }
            target.live_auth = lambda: [basic("admin", ADMIN), f"Bearer {ADMIN}".encode()]
            yield target

    with running(started) as target:
        yield target


@pytest.fixture(scope="module")
def appview(plc_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    from appview.app import create_app
    from appview.config import AppviewConfig

    data_dir = tmp_path_factory.mktemp("fuzz-appview")

    @asynccontextmanager
    async def started() -> AsyncIterator[Target]:
        upstream = FakePds()
        async with httpx.AsyncClient() as http, serve_fake_pds(upstream) as url:
            env = {"BSKY_DEV_MODE": "true", "BSKY_DID_PLC_URL": plc_url, "BSKY_REPO_PROVIDER": url}
            config = AppviewConfig.load(env, data_dir=str(data_dir))
            app = create_app(config, validate_output=True, backoff_base=0.05)
            async with app.router.lifespan_context(app):
                ingest = app.state.ctx.ingest
                alice = await indexed_accounts(
                    upstream,
                    PlcClient(plc_url, http),
                    url,
                    lambda seq: ingest.wait_for(lambda: ingest.idle(seq)),
                )
                target = Target(
                    app, "xrpc", error_paths=("/xrpc/", "/img/"), upstream_failures=True
                )
                tokens = ServiceTokens(alice.did, alice.key, config.did)
                target.endpoint_auth = tokens.for_method
                timeline = "app.bsky.feed.getTimeline"
                valid = {"authorization": tokens.for_method(timeline)[0]}
                r = await target.client.get(f"/xrpc/{timeline}", headers=valid)
                assert r.status_code == 200 and r.json()["feed"], r.text  # the viewer's follow
                uri = f"at://{alice.did}/app.bsky.feed.post/3kaaaaaaaaaa2"
                target.live_strings = lambda: [alice.did, "a.test", uri]
                target.live_values = lambda: {
                    "did": [alice.did],
                    "handle": ["a.test", "b.test"],
                    "at-identifier": [alice.did, "a.test"],
                    "at-uri": [uri, f"at://{alice.did}/app.bsky.feed.post/3kaaaaaaaaaa4"],
                    "": [alice.did, "a.test"],
                }
                target.special[IMAGES] = image_paths(
                    hostile.hostile_strings(target.live_strings), alice.did
                )
                yield target

    with running(started) as target:
        yield target


@pytest.fixture(scope="module")
def jetstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    from jetstream.app import create_app
    from jetstream.config import JetstreamConfig
    from jetstream.subscribe_events import NSID

    # Nothing upstream: the log is filled here, so that cursors replay real events.
    env = {"JETSTREAM_WS_URL": "ws://127.0.0.1:9/xrpc/com.atproto.sync.subscribeRepos"}
    config = JetstreamConfig.load(env, data_dir=str(tmp_path_factory.mktemp("fuzz-jetstream")))

    @asynccontextmanager
    async def started() -> AsyncIterator[Target]:
        app = create_app(config, backoff_base=60)
        async with app.router.lifespan_context(app):
            Stream("", app.state.ctx).add(200)
            target = Target(app, "xrpc")
            target.live_values = lambda: {"did": DIDS, "nsid": [*COLLECTIONS, "app.bsky.*"]}
            strings = hostile.hostile_strings(lambda: DIDS)
            words = Vocabulary(strings, hostile.json_values(strings), target.live_values)
            target.params = {
                "WS /subscribe": jetstream_input.SUBSCRIBE,
                f"WS /xrpc/{NSID}": jetstream_input.SUBSCRIBE_EVENTS,
                f"GET /xrpc/{NSID}": jetstream_input.SUBSCRIBE_EVENTS,
            }
            target.messages = {
                "WS /subscribe": jetstream_input.client_messages(words),
                f"WS /xrpc/{NSID}": jetstream_input.client_messages(words),
            }
            yield target

    with running(started) as target:
        yield target


@pytest.fixture(scope="module")
def feedgen(plc_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    from feedgen.app import create_app, load_feed
    from feedgen.config import FeedgenConfig

    data_dir = tmp_path_factory.mktemp("fuzz-feedgen")
    # The personalised example: a viewer's valid token reaches the feed's own function.
    feed = load_feed("feedgen.examples.follows_liked")

    @asynccontextmanager
    async def started() -> AsyncIterator[Target]:
        upstream = FakePds()
        async with httpx.AsyncClient() as http, serve_fake_pds(upstream) as url:
            publisher = "did:plc:" + "p" * 24
            env = {
                "FEEDGEN_DEV_MODE": "true",
                "FEEDGEN_PUBLISHER_DID": publisher,
                "FEEDGEN_PLC_URL": plc_url,
                "FEEDGEN_SUBSCRIPTION_ENDPOINT": url.replace("http://", "ws://")
                + "/xrpc/com.atproto.sync.subscribeRepos",
            }
            config = FeedgenConfig.load(env, data_dir=str(data_dir))
            app = create_app(config, feed, validate_output=True, backoff_base=0.05)
            async with app.router.lifespan_context(app):
                stats = app.state.ctx.indexer.stats

                async def applied(seq: int) -> None:
                    async with asyncio.timeout(30):
                        while (stats.position or 0) < seq:
                            await asyncio.sleep(0.02)

                alice = await indexed_accounts(upstream, PlcClient(plc_url, http), url, applied)
                target = Target(app, "xrpc")
                tokens = ServiceTokens(alice.did, alice.key, config.service_did)
                target.endpoint_auth = tokens.for_method
                feed_uri = app.state.ctx.feed_uri
                skeleton = "app.bsky.feed.getFeedSkeleton"
                # Anyone's likes (alice's of bob's post); for alice, her follows' (bob: none).
                for auth, count in ((None, 1), (tokens.for_method(skeleton)[0], 0)):
                    r = await target.client.get(
                        f"/xrpc/{skeleton}",
                        params={"feed": feed_uri},
                        headers={"authorization": auth} if auth else {},
                    )
                    assert r.status_code == 200 and len(r.json()["feed"]) == count, r.text
                target.live_strings = lambda: [alice.did, feed_uri]
                target.live_values = lambda: {"at-uri": [feed_uri], "did": [alice.did, publisher]}
                yield target

    with running(started) as target:
        yield target

"""The feed-generator SDK end to end on real servers (issue 12, "Proof"): PLC, PDS, relay and
jetstream processes, and `skyloft feedgen serve` with the example feeds."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from atcore.identity.resolver import IdentityResolver
from atcore.jwt import encode_es
from atcore.keys import generate_k256
from feedgen.api import cursor_tag, encode_cursor
from feedgen.sdk import Ranked
from skyloft.cli import main
from tests.feedgen.harness import Feedgen, eventually, running_feedgen, service_token
from tests.feedgen.postgres import fresh_database
from tests.jetstream.conftest import (
    FOLLOW,
    LIKE,
    PASSWORD,
    POST,
    Account,
    Network,
    jetstream_env,
)
from tests.jetstream.test_nats import NATS_URL, names  # noqa: F401  (a fixture)
from tests.servers import running_service

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HASHTAG = "feedgen.examples.hashtag"


def uri(account: Account, created: dict[str, str]) -> str:
    assert created["uri"].startswith(f"at://{account.did}/")
    return created["uri"]


async def shows(feedgen: Feedgen, http: httpx.AsyncClient, expected: list[str]) -> None:
    async def check() -> bool:
        return await feedgen.posts(http) == expected

    await eventually(check)


async def test_posts_deletes_and_cursors_from_the_relay(
    network: Network, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    alice = await Account.create(http, network.pds, "alice-fg.test")
    with running_feedgen(network, tmp_path / "fg", HASHTAG, alice.did) as feedgen:
        first = uri(alice, await alice.post(http, "hello #skyloft"))
        await alice.post(http, "nothing to see")
        second = uri(alice, await alice.post(http, "#atproto is neat"))
        await shows(feedgen, http, [second, first])

        # Stable cursors: a page, then the next one, unaffected by a newer post meanwhile.
        page = (await feedgen.skeleton(http, limit=1)).json()
        assert page["feed"] == [{"post": second}]
        third = uri(alice, await alice.post(http, "more skyloft"))
        await shows(feedgen, http, [third, second, first])
        rest = (await feedgen.skeleton(http, limit=1, cursor=page["cursor"])).json()
        assert rest["feed"] == [{"post": first}]

        # Deletes leave the feed.
        await alice.delete(http, POST, second.rsplit("/", 1)[1])
        await shows(feedgen, http, [third, first])

        # An edit that no longer matches leaves the feed too.
        edit = {"$type": POST, "text": "changed my mind", "createdAt": "2025-01-01T00:00:00.000Z"}
        body = {"repo": alice.did, "collection": POST, "rkey": third.rsplit("/", 1)[1]}
        await alice.call(http, "com.atproto.repo.putRecord", {**body, "record": edit})
        await shows(feedgen, http, [first])

        # A cursor from another feed, or no cursor at all, is a 400; so is another feed's URI.
        foreign = encode_cursor(Ranked(1.0, first), cursor_tag(feedgen.feed + "x", None))
        for cursor in (foreign, "garbage!", "x" * 2000):
            response = await feedgen.skeleton(http, cursor=cursor)
            assert response.status_code == 400, response.text
            assert response.json()["error"] == "InvalidRequest"
        other = feedgen.feed.replace("/hashtag", "/other")
        response = await http.get(feedgen.url + "/xrpc/app.bsky.feed.getFeedSkeleton?feed=" + other)
        assert (response.status_code, response.json()["error"]) == (400, "UnknownFeed")

        # The did:web document names the service, as an appview resolving it finds it.
        endpoint = feedgen.url.replace("127.0.0.1", "localhost")
        doc = httpx.get(feedgen.url + "/.well-known/did.json").json()
        assert doc["id"] == feedgen.did
        assert doc["service"] == [
            {"id": "#bsky_fg", "type": "BskyFeedGenerator", "serviceEndpoint": endpoint}
        ]
        async with IdentityResolver(network.plc, allow_private=True) as resolver:
            resolved = await resolver.resolve_did(feedgen.did)
        assert resolved.service_endpoint("#bsky_fg", "BskyFeedGenerator") == endpoint


async def test_service_auth(network: Network, http: httpx.AsyncClient, tmp_path: Path) -> None:
    alice = await Account.create(http, network.pds, "alice-auth.test")
    with running_feedgen(network, tmp_path / "fg", HASHTAG, alice.did) as feedgen:
        good = await service_token(http, alice, feedgen.did)
        assert (await feedgen.skeleton(http, good)).status_code == 200

        forged_claims = {
            "iss": alice.did,
            "aud": feedgen.did,
            "lxm": "app.bsky.feed.getFeedSkeleton",
            "exp": int(time.time()) + 60,
        }
        forged = encode_es(forged_claims, generate_k256())
        elsewhere = await service_token(http, alice, "did:web:elsewhere.test")
        expiring = await service_token(http, alice, feedgen.did, exp=int(time.time()) + 1)
        await asyncio.sleep(2.1)
        cases = [
            (forged, "BadJwtSignature"),
            (elsewhere, "BadJwtAudience"),
            (expiring, "JwtExpired"),
            ("not.a.jwt", "BadJwt"),
        ]
        for token, error in cases:
            response = await feedgen.skeleton(http, token)
            assert (response.status_code, response.json()["error"]) == (401, error)


@pytest.mark.parametrize(
    ("source", "store"), [("relay", "sqlite"), ("jetstream", "sqlite"), ("relay", "postgres")]
)
async def test_restart_resumes_from_the_cursor(
    network: Network,
    http: httpx.AsyncClient,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    source: str,
    store: str,
) -> None:
    alice = await Account.create(http, network.pds, f"restart-{source[:2]}-{store[:2]}.test")
    data = tmp_path / "fg"
    env = {"FEEDGEN_JETSTREAM_URL": network.jetstream} if source == "jetstream" else {}
    if store == "postgres":
        env["FEEDGEN_DATABASE_URL"] = fresh_database(request.getfixturevalue("postgres"), "restart")
    with running_feedgen(network, data, HASHTAG, alice.did, **env) as feedgen:
        kept = [uri(alice, await alice.post(http, f"skyloft {n}")) for n in range(3)]
        await shows(feedgen, http, kept[::-1])
        before = feedgen.status()["position"]
    # While it is down: new posts, and one of the stored ones deleted.
    missed = [uri(alice, await alice.post(http, f"#skyloft while down {n}")) for n in range(3)]
    await alice.delete(http, POST, kept[0].rsplit("/", 1)[1])
    with running_feedgen(network, data, HASHTAG, alice.did, **env) as feedgen:
        expected = sorted(kept[1:] + missed, reverse=True)  # TIDs sort by creation time

        async def check() -> bool:
            return sorted(await feedgen.posts(http), reverse=True) == expected

        await eventually(check)
        assert len(set(await feedgen.posts(http))) == len(expected)
        if source == "relay":
            status = feedgen.status()
            # The relay's seqs have no holes: resuming right after `before` and reading each
            # event once means exactly position - before events were processed.
            assert status["events"] == status["position"] - before
        else:
            # Jetstream positions are times: the first event after the restart is the first
            # one after `before` (its cursor is inclusive, so the SDK asks for before + 1).
            assert feedgen.status()["position"] > before


@pytest.mark.parametrize("source", ["relay", "jetstream"])
async def test_inactive_accounts_are_hidden_until_active_again(
    network: Network, http: httpx.AsyncClient, tmp_path: Path, source: str
) -> None:
    alice = await Account.create(http, network.pds, f"hidden-a-{source[:2]}.test")
    bob = await Account.create(http, network.pds, f"hidden-b-{source[:2]}.test")
    env = {"FEEDGEN_JETSTREAM_URL": network.jetstream} if source == "jetstream" else {}
    with running_feedgen(network, tmp_path / "fg", HASHTAG, alice.did, **env) as feedgen:
        hers = uri(alice, await alice.post(http, "#skyloft from alice"))
        his = uri(bob, await bob.post(http, "#skyloft from bob"))
        await shows(feedgen, http, [his, hers])

        # The PDS emits #account active=false: her posts leave the feed, stored still.
        auth = {"authorization": f"Bearer {alice.token}"}
        for nsid, body, expected in (
            ("deactivateAccount", {}, [his]),
            ("activateAccount", None, [his, hers]),
        ):
            url = f"{network.pds}/xrpc/com.atproto.server.{nsid}"
            response = await http.post(url, json=body, headers=auth)
            assert response.status_code == 200, response.text
            await shows(feedgen, http, expected)


async def test_nats_source_resumes_from_its_stream_sequence(
    network: Network,
    http: httpx.AsyncClient,
    tmp_path: Path,
    names: tuple[str, str],  # noqa: F811  (the fixture imported above)
) -> None:
    """`skyloft jetstream serve --nats` publishing, `skyloft feedgen serve` reading NATS: the
    real NATS server on 127.0.0.1:4222, a stream and subjects of this test's own."""
    stream, subject = names
    nats_env = {"JETSTREAM_NATS_URL": NATS_URL, "JETSTREAM_NATS_STREAM": stream}
    js_env = jetstream_env(
        network.relay_ws, network.plc, JETSTREAM_NATS_SUBJECT=subject, **nats_env
    )
    alice = await Account.create(http, network.pds, "nats-fg.test")
    data = tmp_path / "fg"
    env = {"FEEDGEN_NATS_URL": NATS_URL, "FEEDGEN_NATS_STREAM": stream}
    env["FEEDGEN_NATS_SUBJECT"] = subject
    with running_service("jetstream", tmp_path / "js", env=js_env):
        with running_feedgen(network, data, HASHTAG, alice.did, **env) as feedgen:
            kept = [uri(alice, await alice.post(http, f"skyloft {n}")) for n in range(3)]
            await shows(feedgen, http, kept[::-1])
            before = feedgen.status()["position"]
        missed = [uri(alice, await alice.post(http, f"#skyloft while down {n}")) for n in range(2)]
        await alice.delete(http, POST, kept[0].rsplit("/", 1)[1])
        with running_feedgen(network, data, HASHTAG, alice.did, **env) as feedgen:
            await shows(feedgen, http, sorted(kept[1:] + missed, reverse=True))
            # Stream sequences have no holes: resuming right after `before` and reading each
            # message once means exactly position - before messages were processed.
            status = feedgen.status()
            assert status["events"] == status["position"] - before


async def test_personalised_feed_from_jetstream(
    network: Network, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    alice, bob, carol, dave = [
        await Account.create(http, network.pds, f"{name}-pf.test")
        for name in ("alice", "bob", "carol", "dave")
    ]
    p1 = await alice.post(http, "first")
    p2 = await alice.post(http, "second")
    env = {"FEEDGEN_JETSTREAM_URL": network.jetstream}
    module = "feedgen.examples.follows_liked"
    with running_feedgen(network, tmp_path / "fg", module, alice.did, **env) as feedgen:
        now = "2025-01-01T00:00:00.000Z"
        await bob.create_record(http, FOLLOW, {"subject": carol.did, "createdAt": now})
        ref = {"uri": p1["uri"], "cid": p1["cid"]}
        like = await carol.create_record(http, LIKE, {"subject": ref, "createdAt": now})
        await dave.create_record(
            http, LIKE, {"subject": {"uri": p2["uri"], "cid": p2["cid"]}, "createdAt": now}
        )
        token = await service_token(http, bob, feedgen.did)

        async def personal() -> bool:
            return await feedgen.posts(http, token) == [p1["uri"]]

        await eventually(personal)
        # Without a token: the posts liked by anyone, the latest like first (dave's like
        # comes after those bob's page needed: it may not be stored yet).
        await shows(feedgen, http, [p2["uri"], p1["uri"]])
        # A cursor from bob's page is not one for the public page.
        page = (await feedgen.skeleton(http, token, limit=1)).json()
        response = await feedgen.skeleton(http, cursor=page["cursor"])
        assert response.status_code == 400

        await carol.delete(http, LIKE, like["uri"].rsplit("/", 1)[1])

        async def unliked() -> bool:
            return await feedgen.posts(http, token) == []

        await eventually(unliked)


async def test_publish_writes_the_generator_record(
    network: Network, http: httpx.AsyncClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = await Account.create(http, network.pds, "owner-pub.test")
    monkeypatch.setenv("FEEDGEN_PUBLISH_PASSWORD", PASSWORD)
    service = "did:web:feeds.example.test"
    args = ["feedgen", "publish", HASHTAG, "--pds", network.pds, "--handle", "owner-pub.test"]
    # The command runs its own event loop, as it does from a shell.
    assert await asyncio.to_thread(main, [*args, "--service-did", service]) == 0
    r = await http.get(
        f"{network.pds}/xrpc/com.atproto.repo.getRecord",
        params={"repo": owner.did, "collection": "app.bsky.feed.generator", "rkey": "hashtag"},
    )
    assert r.status_code == 200, r.text
    record = r.json()["value"]
    assert record["did"] == service and record["displayName"] == "Skyloft posts"
    monkeypatch.setenv("FEEDGEN_PUBLISH_PASSWORD", "wrong")
    assert await asyncio.to_thread(main, [*args, "--service-did", service]) == 1

"""The relay in-process against fake PDS upstreams: crawl, verify, emit, list, take down."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from atcore.frames import AccountEvent, CommitEvent, SyncEvent
from atcore.xrpc.errors import InvalidRequest
from relay.config import RelayConfig
from tests.atcore.identity.support import LocalServer, reply
from tests.relay.conftest import Relay, Upstream, relay_env, serve_relay, wait_until
from tests.relay.fake_pds import FakeAccount, post

RELAY_HEADER = {"server": "atproto-relay 1.0"}

POST = "app.bsky.feed.post"
LIKE = "app.bsky.feed.like"


async def crawl(relay: Relay, upstream: Upstream) -> None:
    r = await relay.client.post(
        "/xrpc/com.atproto.sync.requestCrawl", json={"hostname": upstream.hostname}
    )
    assert r.status_code == 200, r.text


async def head_reaches(relay: Relay, seq: int) -> None:
    async def reached() -> bool:
        return relay.ctx.writer.head >= seq

    await wait_until(reached)


async def test_commits_are_verified_resequenced_and_listed(
    relay: Relay, upstream: Upstream
) -> None:
    alice = await upstream.account("alice.test")
    await upstream.pds.emit(alice.genesis)
    first = alice.commit({f"{POST}/a1": post("one")})
    second = alice.commit({f"{LIKE}/b1": {"$type": LIKE, "createdAt": "2025-01-01T00:00:00Z"}})
    await upstream.pds.emit(first)
    await upstream.pds.emit(second)
    await crawl(relay, upstream)
    await head_reaches(relay, 3)
    events = await relay.events()
    assert [type(e) for e in events] == [CommitEvent] * 3
    assert [e.seq for e in events] == [1, 2, 3]
    assert [e.rev for e in events] == [alice.genesis.rev, first.rev, second.rev]
    assert events[2].blocks == second.blocks and events[2].ops == second.ops

    status = (await relay.get("com.atproto.sync.getRepoStatus", did=alice.did)).json()
    assert status == {"did": alice.did, "active": True, "rev": second.rev}
    latest = (await relay.get("com.atproto.sync.getLatestCommit", did=alice.did)).json()
    assert latest == {"cid": second.commit.encode(), "rev": second.rev}
    repos = (await relay.get("com.atproto.sync.listRepos")).json()["repos"]
    assert repos == [
        {"did": alice.did, "head": second.commit.encode(), "rev": second.rev, "active": True}
    ]
    for collection in (POST, LIKE):
        listed = await relay.get("com.atproto.sync.listReposByCollection", collection=collection)
        assert listed.json() == {"repos": [{"did": alice.did}]}
    none = await relay.get("com.atproto.sync.listReposByCollection", collection="app.x.y")
    assert none.json() == {"repos": []}

    hosts = (await relay.get("com.atproto.sync.listHosts")).json()["hosts"]
    assert hosts == [
        {"hostname": upstream.hostname, "seq": 3, "accountCount": 1, "status": "active"}
    ]
    host = await relay.get("com.atproto.sync.getHostStatus", hostname=upstream.hostname)
    assert host.json()["accountCount"] == 1
    missing = await relay.get("com.atproto.sync.getHostStatus", hostname="nope.example.com")
    assert missing.status_code == 400 and missing.json()["error"] == "HostNotFound"
    unknown = await relay.get(
        "com.atproto.sync.getRepoStatus", did="did:plc:aaaaaaaaaaaaaaaaaaaaaaaa"
    )
    assert unknown.json()["error"] == "RepoNotFound"

    redirect = await relay.get("com.atproto.sync.getRepo", did=alice.did)
    assert redirect.status_code == 302
    location = urlsplit(redirect.headers["location"])
    assert location.netloc == upstream.hostname
    assert location.path == "/xrpc/com.atproto.sync.getRepo"
    assert parse_qs(location.query) == {"did": [alice.did]}


async def test_takedown_stops_events_and_restore_resyncs(relay: Relay, upstream: Upstream) -> None:
    alice = await upstream.account("alice.test")
    await upstream.pds.emit(alice.genesis)
    await crawl(relay, upstream)
    await head_reaches(relay, 1)

    down = await relay.admin("/admin/repo/takedown", {"did": alice.did})
    assert down.status_code == 200, down.text
    await head_reaches(relay, 2)
    hidden = alice.commit({f"{POST}/a1": post("while taken down")})
    await upstream.pds.emit(hidden)

    async def dropped() -> bool:
        return relay.ctx.metrics.value("relay_events_rejected_total", reason="takendown") == 1

    await wait_until(dropped)
    assert relay.ctx.writer.head == 2
    status = (await relay.get("com.atproto.sync.getRepoStatus", did=alice.did)).json()
    assert status == {"did": alice.did, "active": False, "status": "takendown"}
    listed = (await relay.get("com.atproto.sync.listRepos")).json()["repos"]
    assert listed[0]["status"] == "takendown"

    restored = await relay.admin("/admin/repo/reverseTakedown", {"did": alice.did})
    assert restored.status_code == 200
    await head_reaches(relay, 3)
    # The next commit's `since` is the rev the relay never accepted: a chain break, so the
    # repo is fetched whole and the relay emits a #sync at its head before events flow again.
    after = alice.commit({f"{POST}/a2": post("back")})
    await upstream.pds.emit(after)
    await head_reaches(relay, 4)
    third = alice.commit({f"{POST}/a3": post("flowing")})
    await upstream.pds.emit(third)
    await head_reaches(relay, 5)
    events = await relay.events()
    kinds = [(type(e).__name__, getattr(e, "status", None)) for e in events]
    assert kinds == [
        ("CommitEvent", None),
        ("AccountEvent", "takendown"),
        ("AccountEvent", None),
        ("SyncEvent", None),
        ("CommitEvent", None),
    ]
    assert isinstance(events[2], AccountEvent) and events[2].active
    assert isinstance(events[3], SyncEvent) and events[3].rev == after.rev
    assert isinstance(events[4], CommitEvent) and events[4].rev == third.rev
    metric = relay.ctx.metrics.value("relay_events_rejected_total", reason="since_mismatch")
    assert metric == 1


async def test_admin_api_needs_the_password(relay: Relay, upstream: Upstream) -> None:
    body = {"did": "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa"}
    anonymous = await relay.client.post("/admin/repo/takedown", json=body)
    assert anonymous.status_code == 401 and anonymous.json()["error"] == "AuthenticationRequired"
    wrong = await relay.client.post("/admin/repo/takedown", json=body, auth=("admin", "nope"))
    assert wrong.status_code == 401
    unknown = await relay.admin("/admin/repo/takedown", body)
    assert unknown.status_code == 404 and unknown.json()["error"] == "RepoNotFound"
    bad = await relay.admin("/admin/repo/takedown", {"did": "not a did"})
    assert bad.status_code == 400


async def test_host_bans_limits_and_requestcrawl_refusals(relay: Relay, upstream: Upstream) -> None:
    async def request(hostname: str) -> tuple[int, str]:
        r = await relay.client.post(
            "/xrpc/com.atproto.sync.requestCrawl", json={"hostname": hostname}
        )
        return r.status_code, r.json().get("error", "") if r.content else ""

    assert (await request("not a host"))[0] == 400
    assert (await request("localhost"))[0] == 400  # a local host needs its port
    assert (await request("localhost:1"))[0] == 400  # nobody answers describeServer there
    await crawl(relay, upstream)
    banned = await relay.admin("/admin/pds/block", {"host": upstream.hostname})
    assert banned.status_code == 200
    assert await request(upstream.hostname) == (400, "HostBanned")
    host = await relay.get("com.atproto.sync.getHostStatus", hostname=upstream.hostname)
    assert host.json()["status"] == "banned"
    assert await relay.admin("/admin/pds/unblock", {"host": upstream.hostname})
    await crawl(relay, upstream)

    limits = {"host": upstream.hostname, "repo_limit": 1, "per_second": 7}
    changed = await relay.admin("/admin/pds/changeLimits", limits)
    assert changed.status_code == 200, changed.text
    listed = await relay.client.get("/admin/pds/list", auth=("admin", "admin-secret"))
    assert listed.json()["hosts"][0]["accountLimit"] == 1
    consumer = relay.ctx.crawler.consumers[upstream.hostname]
    assert consumer.limiter.windows[0].limit == 7

    # Over the account limit: the second account's events are dropped as host-throttled.
    alice, bob = await upstream.account("alice.test"), await upstream.account("bob.test")
    await upstream.pds.emit(alice.genesis)
    await upstream.pds.emit(bob.genesis)

    async def throttled() -> bool:
        value = relay.ctx.metrics.value("relay_events_rejected_total", reason="host_throttled")
        return value == 1

    await wait_until(throttled)
    await head_reaches(relay, 1)  # DIDs run concurrently: bob's drop may come first
    status = (await relay.get("com.atproto.sync.getRepoStatus", did=bob.did)).json()
    assert status == {"did": bob.did, "active": False, "status": "throttled"}
    assert [e.repo for e in await relay.events()] == [alice.did]

    domain = await relay.admin("/admin/subs/banDomain", {"domain": "example.com"})
    assert domain.status_code == 200
    assert await request("pds.example.com") == (400, "HostBanned")


async def test_requestcrawl_refuses_relays_and_non_pds_hosts(relay: Relay) -> None:
    """A host that marks itself a relay is refused whatever it answers; one whose
    describeServer is not a PDS's, or an error, is refused with what it said."""
    other = LocalServer()
    await other.start()
    try:
        other.route("*", "/xrpc/com.atproto.server.describeServer", reply(404, {}, RELAY_HEADER))
        refused = await relay.client.post(
            "/xrpc/com.atproto.sync.requestCrawl", json={"hostname": f"localhost:{other.port}"}
        )
        assert refused.status_code == 400 and "is a relay" in refused.json()["message"]
        other.route("*", "/xrpc/com.atproto.server.describeServer", reply(200, {"x": 1}))
        with pytest.raises(InvalidRequest, match="did not describe itself"):
            await relay.ctx.admission.check_host(f"localhost:{other.port}")
        other.route("*", "/xrpc/com.atproto.server.describeServer", reply(503, {}))
        with pytest.raises(InvalidRequest, match="with HTTP 503"):
            await relay.ctx.admission.check_host(f"localhost:{other.port}")
    finally:
        await other.stop()


async def test_status_page_and_metrics(relay: Relay, upstream: Upstream) -> None:
    alice = await upstream.account("alice.test")
    await upstream.pds.emit(alice.genesis)
    await crawl(relay, upstream)
    await head_reaches(relay, 1)
    page = await relay.client.get("/")
    assert page.status_code == 200 and upstream.hostname in page.text
    assert "atproto-relay" in page.headers["server"]
    text = (await relay.client.get("/metrics")).text
    assert 'relay_events_received_total{kind="commit"} 1' in text
    assert 'relay_events_emitted_total{kind="commit"} 1' in text
    assert 'relay_hosts{status="active"} 1' in text
    assert "relay_consumers 0" in text
    assert (await relay.client.get("/xrpc/_health")).json() == {"status": "ok"}


async def host_status(relay: Relay, hostname: str, expected: str) -> bool:
    r = await relay.get("com.atproto.sync.getHostStatus", hostname=hostname)
    return bool(r.json()["status"] == expected)


@asynccontextmanager
async def relay_with_alice(
    tmp_path: Path, plc_url: str, upstream: Upstream, idle_timeout: str
) -> AsyncIterator[tuple[Relay, FakeAccount]]:
    """A relay with RELAY_HOST_IDLE_TIMEOUT crawling `upstream`, alice's genesis relayed."""
    env = relay_env(plc_url, RELAY_HOST_IDLE_TIMEOUT=idle_timeout)
    config = RelayConfig.load(env, data_dir=str(tmp_path / "relay-with-alice"))
    async for relay in serve_relay(config):
        alice = await upstream.account("alice.test")
        await upstream.pds.emit(alice.genesis)
        await crawl(relay, upstream)
        await head_reaches(relay, 1)
        yield relay, alice


async def test_quiet_host_goes_idle_until_it_asks_again(
    tmp_path: Path, plc_url: str, upstream: Upstream
) -> None:
    async with relay_with_alice(tmp_path, plc_url, upstream, "300ms") as (relay, alice):
        await wait_until(partial(host_status, relay, upstream.hostname, "idle"))
        # Events sent while idle arrive from the persisted cursor once the host asks again.
        await upstream.pds.emit(alice.commit({f"{POST}/a1": post("after a nap")}))
        await crawl(relay, upstream)
        await head_reaches(relay, 2)
        assert await host_status(relay, upstream.hostname, "active")


async def test_a_host_sending_now_and_then_stays_active(
    tmp_path: Path, plc_url: str, upstream: Upstream
) -> None:
    """The idle timeout counts one wait for a frame, not the time since the connection opened."""
    async with relay_with_alice(tmp_path, plc_url, upstream, "2s") as (relay, alice):
        for n in range(2, 8):  # 3 s in all, 0.5 s apart
            await asyncio.sleep(0.5)
            await upstream.pds.emit(alice.commit({f"{POST}/n{n}": post(f"note {n}")}))
            await head_reaches(relay, n)
            assert await host_status(relay, upstream.hostname, "active")
        await wait_until(partial(host_status, relay, upstream.hostname, "idle"))


async def test_a_sync_repeating_the_current_commit_is_ignored(
    relay: Relay, upstream: Upstream
) -> None:
    # At account creation a PDS (ours and the reference) sends the first #commit, then a #sync
    # of that same commit: the relay holds it already, so it is ignored, not a rejection.
    alice = await upstream.account("alice.test")
    await upstream.pds.emit(alice.genesis)
    await upstream.pds.emit(alice.sync_event())
    later = alice.commit({f"{POST}/a1": post("one")})
    await upstream.pds.emit(later)
    await crawl(relay, upstream)
    await head_reaches(relay, 2)

    async def settled() -> bool:
        return relay.ctx.metrics.value("relay_events_received_total", kind="commit") == 2

    await wait_until(settled)
    assert [type(e) for e in await relay.events()] == [CommitEvent, CommitEvent]
    assert relay.ctx.metrics.value("relay_events_ignored_total", kind="sync") == 1
    assert relay.ctx.metrics.by_label("relay_events_rejected_total", "reason") == {}
    page = (await relay.client.get("/")).text
    assert "rev_not_newer" not in page

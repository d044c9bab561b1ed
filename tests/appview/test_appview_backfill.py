"""Backfill (spec-sync.md, "Record-Level Synchronization"): a repo first seen mid-stream, or
announced by a #sync at a head the index does not have, is indexed from its verified export
(com.atproto.sync.getRepo at the account's PDS); its live events during the backfill are held
and applied after it, those the export already covers dropped, so nothing is lost or doubled;
a bad export indexes nothing and the repo is fetched again after a restart; an inactive
account's backfilled content stays hidden until it is active again."""

from __future__ import annotations

import asyncio
from pathlib import Path

from atcore.frames import AccountEvent
from atcore.identity.plc_client import PlcClient
from atcore.keys import generate_k256
from tests.appview.conftest import Appview, appview_config, serve_appview
from tests.appview.test_appview_index import accounts, record, ref
from tests.relay.fake_pds import TIME, FakeAccount, FakePds, post

Net = tuple[FakePds, str, PlcClient]
POST = "app.bsky.feed.post"
PROFILE = "app.bsky.actor.profile/self"


async def texts(av: Appview, account: FakeAccount) -> list[str]:
    """The account's posts in its author feed; none while the appview knows nothing of it
    (its handle, resolved beside the stream, may not be in yet either)."""
    response = await av.get("app.bsky.feed.getAuthorFeed", actor=account.did, limit=100)
    if response.status_code == 400 and response.json()["message"] == "Profile not found":
        return []
    assert response.status_code == 200, response.text
    return sorted(item["post"]["record"]["text"] for item in response.json()["feed"])


async def in_progress(av: Appview, did: str) -> None:
    """Until `did`'s export has been asked for and is still being fetched."""
    ingest = av.ctx.ingest
    assert ingest is not None
    while did not in ingest.backfill.active or av.upstream.getrepo_calls == 0:
        await asyncio.sleep(0.01)


async def received(av: Appview, seq: int) -> None:
    """Until the writer has gone past `seq` (backfills may still be in progress)."""
    ingest = av.ctx.ingest
    assert ingest is not None
    await ingest.wait_for(lambda: (ingest.applied_seq or 0) >= seq)


async def test_an_account_first_seen_mid_stream_is_backfilled(
    tmp_path: Path, plc_url: str, network: Net
) -> None:
    upstream, url, _ = network
    alice, bob = await accounts(network, "alice", "bob")
    # Written before the appview existed: never on its firehose.
    old = alice.commit({f"{POST}/3kaaaaaaaab{c}2": post(f"old {c}") for c in "abc"})
    alice.commit({PROFILE: record("app.bsky.actor.profile", displayName="Alice")})
    async with serve_appview(appview_config(tmp_path, plc_url, url), upstream) as av:
        await av.write(alice, {f"{POST}/3kaaaaaaaacaa": post("new")})
        assert await texts(av, alice) == ["new", "old a", "old b", "old c"]
        shown = await av.ok("app.bsky.actor.getProfile", actor=alice.did)
        assert (shown["displayName"], shown["postsCount"]) == ("Alice", 4)
        assert upstream.getrepo_calls == 1
        # A repo whose first commit the appview sees (no `since`) needs no export.
        await av.emit(bob.genesis)
        liked = ref(alice, old, f"{POST}/3kaaaaaaaabb2")
        like = record("app.bsky.feed.like", subject=liked)
        await av.write(bob, {"app.bsky.feed.like/3kaaaaaaaaaa2": like})
        (view,) = (await av.ok("app.bsky.feed.getPosts", uris=[liked["uri"]]))["posts"]
        assert view["likeCount"] == 1
        assert upstream.getrepo_calls == 1


async def test_events_during_a_backfill_after_its_export_are_applied_once(
    tmp_path: Path, plc_url: str, network: Net
) -> None:
    upstream, url, _ = network
    alice, bob = await accounts(network, "alice", "bob")
    old = alice.commit({f"{POST}/3kaaaaaaaaab2": post("old"), f"{POST}/3kaaaaaaaaac2": post("x")})
    async with serve_appview(appview_config(tmp_path, plc_url, url), upstream) as av:
        await av.emit(bob.genesis)
        upstream.getrepo_gate = asyncio.Event()
        await upstream.emit(alice.commit({f"{POST}/3kaaaaaaaaad2": post("first seen")}))
        await in_progress(av, alice.did)
        upstream.repo_overrides[alice.did] = alice.repo_car()  # the export, taken now
        liked = ref(alice, old, f"{POST}/3kaaaaaaaaab2")
        for event in (
            alice.commit({f"{POST}/3kaaaaaaaaae2": post("during")}),
            alice.commit({f"{POST}/3kaaaaaaaaac2": None}),
            bob.commit(
                {"app.bsky.feed.like/3kaaaaaaaaaa2": record("app.bsky.feed.like", subject=liked)}
            ),
        ):
            last = await upstream.emit(event)
        await received(av, last)
        assert await texts(av, alice) == []  # held until the export is in
        upstream.getrepo_gate.set()
        await av.applied(last)
        assert await texts(av, alice) == ["during", "first seen", "old"]
        shown = await av.ok("app.bsky.actor.getProfile", actor=alice.did)
        assert shown["postsCount"] == 3
        (view,) = (await av.ok("app.bsky.feed.getPosts", uris=[liked["uri"]]))["posts"]
        assert view["likeCount"] == 1
        likes = (await av.ok("app.bsky.notification.listNotifications", alice))["notifications"]
        assert [n["reason"] for n in likes] == ["like"]


async def test_events_the_export_already_covers_are_dropped(
    tmp_path: Path, plc_url: str, network: Net
) -> None:
    upstream, url, _ = network
    (alice,) = await accounts(network, "alice")
    alice.commit({f"{POST}/3kaaaaaaaaab2": post("old")})
    async with serve_appview(appview_config(tmp_path, plc_url, url), upstream) as av:
        upstream.getrepo_gate = asyncio.Event()
        await upstream.emit(alice.commit({f"{POST}/3kaaaaaaaaad2": post("first seen")}))
        await in_progress(av, alice.did)
        # Committed before the export is taken (the gate opens first): the export has them.
        for event in (
            alice.commit({f"{POST}/3kaaaaaaaaae2": post("during")}),
            alice.commit({f"{POST}/3kaaaaaaaaae2": post("edited")}),
            alice.commit({f"{POST}/3kaaaaaaaaab2": None}),
        ):
            last = await upstream.emit(event)
        await received(av, last)
        upstream.getrepo_gate.set()
        await av.applied(last)
        assert await texts(av, alice) == ["edited", "first seen"]
        shown = await av.ok("app.bsky.actor.getProfile", actor=alice.did)
        assert shown["postsCount"] == 2
        after = await av.write(alice, {f"{POST}/3kaaaaaaaaaf2": post("after")})
        assert after.since is not None
        assert await texts(av, alice) == ["after", "edited", "first seen"]
        assert upstream.getrepo_calls == 1


async def test_a_backfill_cut_short_is_done_again_after_a_restart(
    tmp_path: Path, plc_url: str, network: Net
) -> None:
    upstream, url, _ = network
    (alice,) = await accounts(network, "alice")
    alice.commit({f"{POST}/3kaaaaaaaaab2": post("old")})
    config = appview_config(tmp_path, plc_url, url)
    upstream.getrepo_gate = asyncio.Event()
    async with serve_appview(config, upstream) as av:
        await upstream.emit(alice.commit({f"{POST}/3kaaaaaaaaac2": post("seen")}))
        await in_progress(av, alice.did)
        last = await upstream.emit(alice.commit({f"{POST}/3kaaaaaaaaad2": post("held")}))
        await received(av, last)
    # Stopped mid-backfill: the held event is gone from memory, the cursor past it.
    upstream.getrepo_gate.set()
    async with serve_appview(config, upstream) as av:
        await av.applied(last)
        assert await texts(av, alice) == ["held", "old", "seen"]
        assert upstream.getrepo_calls == 2


async def test_a_bad_export_indexes_nothing_until_a_good_one(
    tmp_path: Path, plc_url: str, network: Net
) -> None:
    upstream, url, _ = network
    (alice,) = await accounts(network, "alice")
    alice.commit({f"{POST}/3kaaaaaaaaab2": post("old")})
    config = appview_config(tmp_path, plc_url, url)
    async with serve_appview(config, upstream) as av:
        # Signed with a key that is not alice's: the whole export is refused.
        forged = FakeAccount(**{**alice.__dict__})
        forged.commit({f"{POST}/3kaaaaaaaaac2": post("forged")}, key=generate_k256())
        upstream.repo_overrides[alice.did] = forged.repo_car()
        await av.write(alice, {f"{POST}/3kaaaaaaaaad2": post("seen")})
        ingest = av.ctx.ingest
        assert ingest is not None and ingest.backfill.failures == 1
        assert await texts(av, alice) == []
        upstream.repo_overrides[alice.did] = b"not a CAR"
        last = await upstream.emit(alice.commit({f"{POST}/3kaaaaaaaaae2": post("dropped")}))
        await av.applied(last)
        assert await texts(av, alice) == []
    del upstream.repo_overrides[alice.did]
    async with serve_appview(config, upstream) as av:
        await av.applied(last)
        assert await texts(av, alice) == ["dropped", "old", "seen"]


async def test_a_sync_to_another_head_backfills_the_repo(
    tmp_path: Path, plc_url: str, network: Net
) -> None:
    upstream, url, _ = network
    (alice,) = await accounts(network, "alice")
    async with serve_appview(appview_config(tmp_path, plc_url, url), upstream) as av:
        await av.emit(alice.genesis)
        await av.write(
            alice, {f"{POST}/3kaaaaaaaaab2": post("one"), f"{POST}/3kaaaaaaaaac2": post("two")}
        )
        assert upstream.getrepo_calls == 0
        # The repo changed without a #commit the appview saw (an import): #sync says so.
        alice.commit({f"{POST}/3kaaaaaaaaab2": None, f"{POST}/3kaaaaaaaaad2": post("three")})
        await av.emit(alice.sync_event())
        assert await texts(av, alice) == ["three", "two"]
        assert (await av.ok("app.bsky.actor.getProfile", actor=alice.did))["postsCount"] == 2
        await av.emit(alice.sync_event())  # the head it has: ignored
        assert upstream.getrepo_calls == 1


async def test_a_backfilled_inactive_account_stays_hidden_until_active(
    tmp_path: Path, plc_url: str, network: Net
) -> None:
    upstream, url, _ = network
    (alice,) = await accounts(network, "alice")
    first = alice.commit({f"{POST}/3kaaaaaaaaab2": post("old")})
    uri = ref(alice, first, f"{POST}/3kaaaaaaaaab2")["uri"]
    async with serve_appview(appview_config(tmp_path, plc_url, url), upstream) as av:
        await av.emit(AccountEvent(0, alice.did, TIME, active=False, status="takendown"))
        await av.write(alice, {f"{POST}/3kaaaaaaaaac2": post("new")})
        assert upstream.getrepo_calls == 1
        response = await av.get("app.bsky.actor.getProfile", actor=alice.did)
        assert (response.status_code, response.json()["error"]) == (400, "AccountTakedown")
        assert (await av.ok("app.bsky.feed.getPosts", uris=[uri]))["posts"] == []
        await av.emit(AccountEvent(0, alice.did, TIME, active=True))
        assert len((await av.ok("app.bsky.feed.getPosts", uris=[uri]))["posts"]) == 1
        assert (await av.ok("app.bsky.actor.getProfile", actor=alice.did))["postsCount"] == 2

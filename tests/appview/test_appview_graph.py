"""The social graph beyond follows, every response checked against its lexicon: private mutes
(actors and lists) with their viewer state and where they hide content, blocks and block
lists both ways, lists and their items, relationships, starter packs, auth and bad params."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from atcore.identity.plc_client import PlcClient
from atcore.syntax.datetime import now_iso
from tests.appview.conftest import Appview, appview_config, serve_appview
from tests.appview.test_appview_index import accounts, record, ref
from tests.relay.fake_pds import TIME, FakeAccount, FakePds, post

Net = tuple[FakePds, str, PlcClient]
CURATE = "app.bsky.graph.defs#curatelist"
MODLIST = "app.bsky.graph.defs#modlist"


async def call(av: Appview, nsid: str, viewer: FakeAccount | None, body: Any) -> httpx.Response:
    headers = {} if viewer is None else {"authorization": f"Bearer {av.token(viewer, nsid)}"}
    return await av.client.post(f"/xrpc/{nsid}", json=body, headers=headers)


async def profiles(av: Appview, *people: FakeAccount) -> None:
    """Give each account a profile, so the appview knows it before it acts."""
    for person in people:
        value = record("app.bsky.actor.profile", displayName=person.did[-4:])
        await av.write(person, {"app.bsky.actor.profile/self": value})


async def make_list(
    av: Appview, owner: FakeAccount, rkey: str, purpose: str, members: list[FakeAccount]
) -> str:
    path = f"app.bsky.graph.list/{rkey}"
    event = await av.write(owner, {path: record("app.bsky.graph.list", name=rkey, purpose=purpose)})
    uri = ref(owner, event, path)["uri"]
    items = {
        f"app.bsky.graph.listitem/{rkey[:-1]}{n + 2}": record(
            "app.bsky.graph.listitem", subject=member.did, list=uri
        )
        for n, member in enumerate(members)
    }
    await av.write(owner, items)
    return uri


async def test_mutes_are_private_and_hide_content(
    tmp_path: Path, plc_url: str, network: Net
) -> None:
    upstream, url, _ = network
    alice, bob, carol = await accounts(network, "alice", "bob", "carol")
    async with serve_appview(appview_config(tmp_path, plc_url, url), upstream) as av:
        await profiles(av, alice, bob, carol)
        for rkey, other in (("3kaaaaaaaaba2", bob), ("3kaaaaaaaaca2", carol)):
            follow = record("app.bsky.graph.follow", subject=other.did)
            await av.write(alice, {f"app.bsky.graph.follow/{rkey}": follow})
        bob_post = await av.write(bob, {"app.bsky.feed.post/3kbbbbbbbbbb2": post("from bob")})
        bob_ref = ref(bob, bob_post, "app.bsky.feed.post/3kbbbbbbbbbb2")
        await av.write(carol, {"app.bsky.feed.post/3kcccccccccc2": post("from carol")})
        repost = record("app.bsky.feed.repost", subject=bob_ref)
        await av.write(carol, {"app.bsky.feed.repost/3kcccccccccc3": repost})
        like = record("app.bsky.feed.like", subject=bob_ref)
        await av.write(carol, {"app.bsky.feed.like/3kcccccccccc4": like})

        async def timeline() -> list[str]:
            feed = (await av.ok("app.bsky.feed.getTimeline", alice))["feed"]
            return [i["post"]["record"]["text"] + ("+" if "reason" in i else "") for i in feed]

        assert sorted(await timeline()) == ["from bob", "from bob+", "from carol"]
        # Auth is required and nobody can mute themselves or an unknown account.
        response = await call(av, "app.bsky.graph.muteActor", None, {"actor": bob.did})
        assert response.status_code == 401
        response = await call(av, "app.bsky.graph.muteActor", alice, {"actor": alice.did})
        assert response.status_code == 400
        response = await call(av, "app.bsky.graph.muteActor", alice, {"actor": "nobody.test"})
        assert response.status_code == 400
        response = await call(av, "app.bsky.graph.muteActor", alice, {"actor": bob.did})
        assert response.status_code == 200, response.text

        assert await timeline() == ["from carol"]

        async def author_feed(actor: FakeAccount) -> list[str]:
            feed = (await av.ok("app.bsky.feed.getAuthorFeed", alice, actor=actor.did))["feed"]
            return sorted(i["post"]["record"]["text"] for i in feed)

        # Author feeds: carol's repost of muted bob is left out; bob's own feed still shows.
        assert await author_feed(carol) == ["from carol"]
        assert await author_feed(bob) == ["from bob"]
        profile = await av.ok("app.bsky.actor.getProfile", alice, actor=bob.did)
        assert profile["viewer"]["muted"] is True
        # Private: bob and the public see no mute.
        assert "viewer" not in await av.ok("app.bsky.actor.getProfile", actor=bob.did)
        mine = await av.ok("app.bsky.actor.getProfile", bob, actor=alice.did)
        assert mine["viewer"]["muted"] is False
        mutes = await av.ok("app.bsky.graph.getMutes", alice)
        assert [m["did"] for m in mutes["mutes"]] == [bob.did]
        assert (await av.ok("app.bsky.graph.getMutes", bob))["mutes"] == []
        assert (await av.get("app.bsky.graph.getMutes")).status_code == 401

        # Bob's reply is not listed to alice while he is muted; as the reference's unread
        # count (which filters no mutes, as no blocks), it still counts as unread.
        hi = await av.write(alice, {"app.bsky.feed.post/3kaaaaaaaaaa2": post("hi")})
        hi_ref = ref(alice, hi, "app.bsky.feed.post/3kaaaaaaaaaa2")
        reply = {**post("re"), "reply": {"root": hi_ref, "parent": hi_ref}}
        await av.write(bob, {"app.bsky.feed.post/3kbbbbbbbbbb3": reply})
        listed = await av.ok("app.bsky.notification.listNotifications", alice)
        assert [n["author"]["did"] for n in listed["notifications"]] == []
        assert (await av.ok("app.bsky.notification.getUnreadCount", alice))["count"] == 1

        # A scoped mute of carol's reposts leaves her own posts in the timeline.
        response = await call(
            av, "app.bsky.graph.muteActor", alice, {"actor": carol.did, "onlyReposts": True}
        )
        assert response.status_code == 200, response.text
        response = await call(av, "app.bsky.graph.unmuteActor", alice, {"actor": bob.did})
        assert response.status_code == 200, response.text
        assert sorted(await timeline()) == ["from bob", "from carol", "hi", "re"]
        carol_view = await av.ok("app.bsky.actor.getProfile", alice, actor=carol.did)
        assert carol_view["viewer"]["muted"] is False
        assert carol_view["viewer"]["mutedOnlyReposts"] is True
        assert (await av.ok("app.bsky.graph.getMutes", alice))["mutes"] == []
        listed = await av.ok("app.bsky.notification.listNotifications", alice)
        assert [n["author"]["did"] for n in listed["notifications"]] == [bob.did]

        # A mute of carol's quote posts leaves out her quotes and nothing else.
        quote = {
            **post("carol quotes"),
            "embed": {"$type": "app.bsky.embed.record", "record": bob_ref},
        }
        await av.write(carol, {"app.bsky.feed.post/3kcccccccccc5": quote})
        assert "carol quotes" in await timeline()
        response = await call(
            av, "app.bsky.graph.muteActor", alice, {"actor": carol.did, "onlyQuoteposts": True}
        )
        assert response.status_code == 200, response.text
        # (a new mute replaces the old one's scope, so carol's repost is back)
        assert sorted(await timeline()) == ["from bob", "from bob+", "from carol", "hi", "re"]
        carol_view = await av.ok("app.bsky.actor.getProfile", alice, actor=carol.did)
        assert carol_view["viewer"]["mutedOnlyQuoteposts"] is True
        assert "mutedOnlyReposts" not in carol_view["viewer"]

        # A muted list mutes its members; the list's own viewer state says so.
        muted = await make_list(av, carol, "3kcccccccccd2", MODLIST, [bob])
        response = await call(av, "app.bsky.graph.muteActorList", alice, {"list": muted})
        assert response.status_code == 200, response.text
        bob_view = await av.ok("app.bsky.actor.getProfile", alice, actor=bob.did)
        assert bob_view["viewer"]["muted"] is True
        assert bob_view["viewer"]["mutedByList"]["uri"] == muted
        assert bob_view["viewer"]["mutedByList"]["viewer"]["muted"] is True
        assert "from bob" not in await timeline()
        (listed,) = (await av.ok("app.bsky.graph.getListMutes", alice))["lists"]
        assert (listed["uri"], listed["listItemCount"]) == (muted, 1)
        missing = f"at://{carol.did}/app.bsky.graph.list/3kzzzzzzzzzz2"
        response = await call(av, "app.bsky.graph.muteActorList", alice, {"list": missing})
        assert response.status_code == 400
        response = await call(av, "app.bsky.graph.unmuteActorList", alice, {"list": muted})
        assert response.status_code == 200, response.text
        assert (await av.ok("app.bsky.graph.getListMutes", alice))["lists"] == []
        assert "from bob" in await timeline()


async def test_blocks_block_lists_and_relationships(
    tmp_path: Path, plc_url: str, network: Net
) -> None:
    upstream, url, _ = network
    alice, bob, carol, dave = await accounts(network, "alice", "bob", "carol", "dave")
    async with serve_appview(appview_config(tmp_path, plc_url, url), upstream) as av:
        await profiles(av, alice, bob, carol, dave)
        block = await av.write(
            alice,
            {"app.bsky.graph.block/3kaaaaaaaaaa2": record("app.bsky.graph.block", subject=bob.did)},
        )
        block_uri = ref(alice, block, "app.bsky.graph.block/3kaaaaaaaaaa2")["uri"]
        follow = record("app.bsky.graph.follow", subject=alice.did)
        follow_event = await av.write(carol, {"app.bsky.graph.follow/3kcccccccccc2": follow})
        follow_uri = ref(carol, follow_event, "app.bsky.graph.follow/3kcccccccccc2")["uri"]
        blocks = await av.ok("app.bsky.graph.getBlocks", alice)
        assert [b["did"] for b in blocks["blocks"]] == [bob.did]
        assert blocks["blocks"][0]["viewer"]["blocking"] == block_uri
        assert (await av.ok("app.bsky.graph.getBlocks", bob))["blocks"] == []
        assert (await av.get("app.bsky.graph.getBlocks")).status_code == 401

        # Carol's mod list holds dave; alice subscribes to it as a block list.
        modlist = await make_list(av, carol, "3kcccccccccd2", MODLIST, [dave])
        sub = record("app.bsky.graph.listblock", subject=modlist)
        sub_event = await av.write(alice, {"app.bsky.graph.listblock/3kaaaaaaaaab2": sub})
        sub_uri = ref(alice, sub_event, "app.bsky.graph.listblock/3kaaaaaaaaab2")["uri"]
        (blocked,) = (await av.ok("app.bsky.graph.getListBlocks", alice))["lists"]
        assert blocked["uri"] == modlist and blocked["viewer"]["blocked"] == sub_uri
        dave_view = await av.ok("app.bsky.actor.getProfile", alice, actor=dave.did)
        assert dave_view["viewer"]["blockingByList"]["uri"] == modlist
        assert dave_view["viewer"]["blocking"] == modlist

        relations = await av.ok(
            "app.bsky.graph.getRelationships",
            actor=alice.did,
            others=[bob.did, carol.did, dave.did, "did:plc:nobody"],
        )
        assert relations["actor"] == alice.did
        bob_rel, carol_rel, dave_rel, nobody = relations["relationships"]
        assert bob_rel == {
            "$type": "app.bsky.graph.defs#relationship",
            "did": bob.did,
            "blocking": block_uri,
        }
        assert carol_rel["followedBy"] == follow_uri and "following" not in carol_rel
        assert dave_rel["blockingByList"] == sub_uri
        assert nobody["notFound"] is True
        reverse = await av.ok("app.bsky.graph.getRelationships", actor=dave.did, others=[alice.did])
        assert reverse["relationships"][0]["blockedByList"] == sub_uri
        unknown = await av.ok("app.bsky.graph.getRelationships", actor="nobody.test")
        assert unknown == {"relationships": []}
        too_many = [f"did:plc:{n:024d}" for n in range(31)]
        response = await av.get("app.bsky.graph.getRelationships", actor=alice.did, others=too_many)
        assert response.status_code == 400


async def test_lists_and_starter_packs(tmp_path: Path, plc_url: str, network: Net) -> None:
    upstream, url, _ = network
    alice, bob, carol, dave = await accounts(network, "alice", "bob", "carol", "dave")
    async with serve_appview(appview_config(tmp_path, plc_url, url), upstream) as av:
        await profiles(av, alice, bob, carol, dave)
        curated = await make_list(av, alice, "3kaaaaaaaaaa2", CURATE, [bob, carol, dave])
        modlist = await make_list(av, alice, "3kaaaaaaaaab2", MODLIST, [bob])
        # Carol blocks the list's creator: a curation list leaves her out for others.
        await av.write(
            carol,
            {
                "app.bsky.graph.block/3kcccccccccc2": record(
                    "app.bsky.graph.block", subject=alice.did
                )
            },
        )
        listed = await av.ok("app.bsky.graph.getList", dave, list=curated)
        assert listed["list"]["creator"]["did"] == alice.did
        assert listed["list"]["listItemCount"] == 3
        assert sorted(i["subject"]["did"] for i in listed["items"]) == sorted([bob.did, dave.did])
        own = await av.ok("app.bsky.graph.getList", alice, list=curated)
        assert len(own["items"]) == 3  # the creator sees every member, as the reference
        first = await av.ok("app.bsky.graph.getList", list=curated, limit=1)
        assert len(first["items"]) == 1 and "cursor" in first
        missing = f"at://{alice.did}/app.bsky.graph.list/3kzzzzzzzzzz2"
        response = await av.get("app.bsky.graph.getList", list=missing)
        assert response.status_code == 400
        response = await av.get("app.bsky.graph.getList", list=curated, limit=101)
        assert response.status_code == 400

        lists = await av.ok("app.bsky.graph.getLists", actor=alice.did)
        assert sorted(x["uri"] for x in lists["lists"]) == sorted([curated, modlist])
        only = await av.ok("app.bsky.graph.getLists", actor=alice.did, purposes=["modlist"])
        assert [x["uri"] for x in only["lists"]] == [modlist]
        assert (await av.get("app.bsky.graph.getLists", actor="nobody.test")).status_code == 400

        feed_path = "app.bsky.feed.generator/3kaaaaaaaaad2"
        generator = record("app.bsky.feed.generator", did="did:web:feed.test", displayName="F")
        feed = ref(alice, await av.write(alice, {feed_path: generator}), feed_path)["uri"]
        no_feed = f"at://{alice.did}/app.bsky.feed.generator/3kzzzzzzzzzz2"
        pack_path = "app.bsky.graph.starterpack/3kaaaaaaaaac2"
        pack = record(
            "app.bsky.graph.starterpack",
            name="Pack",
            list=curated,
            feeds=[{"uri": no_feed}, {"uri": feed}],
        )
        pack_event = await av.write(alice, {pack_path: pack})
        pack_ref = ref(alice, pack_event, pack_path)
        pack_uri = pack_ref["uri"]
        # As the reference: joined counts are the profiles naming the pack as the one they
        # joined through, those created in the last week counted apart.
        for who, created in ((bob, now_iso()), (carol, TIME)):
            profile = {
                **record("app.bsky.actor.profile", displayName="joined"),
                "joinedViaStarterPack": pack_ref,
                "createdAt": created,
            }
            await av.write(who, {"app.bsky.actor.profile/self": profile})
        view = (await av.ok("app.bsky.graph.getStarterPack", starterPack=pack_uri))["starterPack"]
        assert view["creator"]["did"] == alice.did and view["list"]["uri"] == curated
        assert sorted(i["subject"]["did"] for i in view["listItemsSample"]) == sorted(
            [bob.did, carol.did, dave.did]
        )
        assert [f["uri"] for f in view["feeds"]] == [feed]
        assert (view["joinedAllTimeCount"], view["joinedWeekCount"]) == (2, 1)
        packs = await av.ok("app.bsky.graph.getStarterPacks", uris=[pack_uri, missing])
        assert [p["uri"] for p in packs["starterPacks"]] == [pack_uri]
        assert packs["starterPacks"][0]["listItemCount"] == 3
        assert packs["starterPacks"][0]["joinedAllTimeCount"] == 2
        by_actor = await av.ok("app.bsky.graph.getActorStarterPacks", actor=alice.did)
        assert [p["uri"] for p in by_actor["starterPacks"]] == [pack_uri]
        assert by_actor["starterPacks"][0]["joinedWeekCount"] == 1
        await av.write(bob, {"app.bsky.actor.profile/self": record("app.bsky.actor.profile")})
        packs = await av.ok("app.bsky.graph.getStarterPacks", uris=[pack_uri])
        joined = packs["starterPacks"][0]
        assert (joined["joinedAllTimeCount"], joined["joinedWeekCount"]) == (1, 0)
        profile = await av.ok("app.bsky.actor.getProfile", actor=alice.did)
        assert profile["associated"]["starterPacks"] == 1
        await av.write(alice, {pack_path: None})
        response = await av.get("app.bsky.graph.getStarterPack", starterPack=pack_uri)
        assert response.status_code == 400

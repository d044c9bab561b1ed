"""The read API over a small indexed network, every response checked against its lexicon:
author feed filters and pins, thread depth and parent height with missing parents, likes and
reposts lists, follower lists, notifications with seen state, and stable cursors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from appview.api.app_bsky_feed import MAX_THREAD_LEVELS
from atcore.identity.plc_client import PlcClient
from runtime.env import ConfigError
from tests.appview.conftest import Appview, appview_config, serve_appview
from tests.appview.test_appview_index import accounts, record, ref
from tests.relay.fake_pds import FakeAccount, FakePds, post

Net = tuple[FakePds, str, PlcClient]
IMAGE = {
    "$type": "blob",
    "ref": {"$link": "bafkreibme22gw2h7y2h7tg2fhqotaqjucnbc24deqo72b6mkl2egezxhvy"},
    "mimeType": "image/jpeg",
    "size": 1000,
}


async def posts_by(
    av: Appview, account: FakeAccount, items: list[tuple[str, dict[str, Any]]]
) -> dict[str, dict[str, str]]:
    """Write each (rkey, record) as a post; returns rkey -> strongRef."""
    refs = {}
    for rkey, value in items:
        path = f"app.bsky.feed.post/{rkey}"
        event = await av.write(account, {path: value})
        refs[rkey] = ref(account, event, path)
    return refs


def texts(feed: list[dict[str, Any]]) -> list[str]:
    return [item["post"]["record"]["text"] for item in feed]


async def test_author_feed_filters_pins_and_cursors(
    tmp_path: Path, plc_url: str, network: Net
) -> None:
    upstream, url, _ = network
    alice, bob = await accounts(network, "alice", "bob")
    async with serve_appview(appview_config(tmp_path, plc_url, url), upstream) as av:
        (other,) = (await posts_by(av, bob, [("3kbbbbbbbbbb2", post("bob's"))])).values()
        plain = (await posts_by(av, alice, [("3kaaaaaaaaaa2", post("plain"))]))["3kaaaaaaaaaa2"]
        to_self = {"root": plain, "parent": plain}
        to_bob = {"root": other, "parent": other}
        await posts_by(
            av,
            alice,
            [
                ("3kaaaaaaaaaa3", {**post("self reply"), "reply": to_self}),
                ("3kaaaaaaaaaa4", {**post("reply to bob"), "reply": to_bob}),
                (
                    "3kaaaaaaaaaa5",
                    {
                        **post("with image"),
                        "embed": {
                            "$type": "app.bsky.embed.images",
                            "images": [{"image": IMAGE, "alt": "a picture"}],
                        },
                    },
                ),
            ],
        )
        repost = record("app.bsky.feed.repost", subject=other)
        await av.write(alice, {"app.bsky.feed.repost/3kaaaaaaaaaa6": repost})
        profile = record(
            "app.bsky.actor.profile", displayName="Alice", pinnedPost=plain, avatar=IMAGE
        )
        await av.write(alice, {"app.bsky.actor.profile/self": profile})

        async def feed(**params: Any) -> list[dict[str, Any]]:
            body = await av.ok("app.bsky.feed.getAuthorFeed", actor=alice.did, **params)
            return list(body["feed"])

        everything = await feed()
        assert sorted(texts(everything)) == sorted(
            ["plain", "self reply", "reply to bob", "with image", "bob's"]
        )
        assert any(
            item.get("reason", {}).get("$type", "").endswith("reasonRepost") for item in everything
        )
        assert "reply to bob" not in texts(await feed(filter="posts_no_replies"))
        assert "self reply" not in texts(await feed(filter="posts_no_replies"))
        assert texts(await feed(filter="posts_with_media")) == ["with image"]
        assert await feed(filter="posts_with_video") == []
        threads = texts(await feed(filter="posts_and_author_threads"))
        assert "self reply" in threads and "reply to bob" not in threads
        pinned = await feed(includePins="true")
        assert pinned[0]["post"]["uri"] == plain["uri"]
        assert pinned[0]["reason"]["$type"] == "app.bsky.feed.defs#reasonPin"
        assert texts(pinned).count("plain") == 1
        image = [i for i in everything if i["post"]["record"]["text"] == "with image"][0]
        (view,) = image["post"]["embed"]["images"]
        link = IMAGE["ref"]["$link"]
        assert view["thumb"].endswith(f"/img/feed_thumbnail/plain/{alice.did}/{link}@jpeg")
        detail = await av.ok("app.bsky.actor.getProfile", actor=alice.did)
        assert detail["avatar"].endswith(f"/img/avatar/plain/{alice.did}/{link}@jpeg")
        assert detail["pinnedPost"] == plain

        # Pages of two: every item once, in the same order as one page.
        seen, cursor = [], None
        while True:
            params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
            body = await av.ok("app.bsky.feed.getAuthorFeed", actor=alice.did, **params)
            seen += [i["post"]["uri"] + i.get("reason", {}).get("uri", "") for i in body["feed"]]
            cursor = body.get("cursor")
            if cursor is None:
                break
        assert seen == [i["post"]["uri"] + i.get("reason", {}).get("uri", "") for i in everything]


async def test_thread_depth_parent_height_and_missing_parents(
    tmp_path: Path, plc_url: str, network: Net
) -> None:
    upstream, url, _ = network
    alice, bob = await accounts(network, "alice", "bob")
    async with serve_appview(appview_config(tmp_path, plc_url, url), upstream) as av:
        root = (await posts_by(av, alice, [("3kaaaaaaaaaa2", post("root"))]))["3kaaaaaaaaaa2"]
        chain = [root]
        for n in range(4):
            parent = chain[-1]
            value = {**post(f"reply {n}"), "reply": {"root": root, "parent": parent}}
            who = bob if n % 2 == 0 else alice
            rkey = f"3kaaaaaaaab{'cdef'[n]}2"
            chain.append((await posts_by(av, who, [(rkey, value)]))[rkey])
        middle = chain[2]["uri"]
        thread = (await av.ok("app.bsky.feed.getPostThread", uri=middle, depth=1, parentHeight=1))[
            "thread"
        ]
        assert thread["post"]["uri"] == middle
        assert thread["parent"]["post"]["uri"] == chain[1]["uri"]
        assert "parent" not in thread["parent"]
        (reply,) = thread["replies"]
        assert reply["post"]["uri"] == chain[3]["uri"] and "replies" not in reply
        assert thread["post"]["replyCount"] == 1

        await av.write(alice, {"app.bsky.feed.post/3kaaaaaaaaaa2": None})
        thread = (await av.ok("app.bsky.feed.getPostThread", uri=chain[1]["uri"]))["thread"]
        assert thread["parent"] == {
            "$type": "app.bsky.feed.defs#notFoundPost",
            "uri": root["uri"],
            "notFound": True,
        }
        response = await av.get("app.bsky.feed.getPostThread", uri=root["uri"])
        assert (response.status_code, response.json()["error"]) == (400, "NotFound")


async def test_likes_reposts_follows_and_notifications(
    tmp_path: Path, plc_url: str, network: Net
) -> None:
    upstream, url, _ = network
    alice, bob, carol = await accounts(network, "alice", "bob", "carol")
    async with serve_appview(appview_config(tmp_path, plc_url, url), upstream) as av:
        hello = (await posts_by(av, alice, [("3kaaaaaaaaaa2", post("hi"))]))["3kaaaaaaaaaa2"]
        for account in (bob, carol):
            await av.write(
                account,
                {
                    "app.bsky.feed.like/3kaaaaaaaaaa2": record("app.bsky.feed.like", subject=hello),
                    "app.bsky.feed.repost/3kaaaaaaaaaa2": record(
                        "app.bsky.feed.repost", subject=hello
                    ),
                    "app.bsky.graph.follow/3kaaaaaaaaaa2": record(
                        "app.bsky.graph.follow", subject=alice.did
                    ),
                },
            )
        mention = {
            **post("hey alice"),
            "facets": [
                {
                    "index": {"byteStart": 4, "byteEnd": 9},
                    "features": [{"$type": "app.bsky.richtext.facet#mention", "did": alice.did}],
                }
            ],
        }
        await posts_by(av, bob, [("3kbbbbbbbbbb2", mention)])
        likes = await av.ok("app.bsky.feed.getLikes", uri=hello["uri"])
        assert {like["actor"]["did"] for like in likes["likes"]} == {bob.did, carol.did}
        reposted = await av.ok("app.bsky.feed.getRepostedBy", uri=hello["uri"], limit=1)
        assert len(reposted["repostedBy"]) == 1 and "cursor" in reposted
        rest = await av.ok(
            "app.bsky.feed.getRepostedBy", uri=hello["uri"], cursor=reposted["cursor"]
        )
        assert {reposted["repostedBy"][0]["did"], rest["repostedBy"][0]["did"]} == {
            bob.did,
            carol.did,
        }
        followers = await av.ok("app.bsky.graph.getFollowers", actor=alice.did)
        assert followers["subject"]["did"] == alice.did
        assert {f["did"] for f in followers["followers"]} == {bob.did, carol.did}
        follows = await av.ok("app.bsky.graph.getFollows", actor=bob.did)
        assert [f["did"] for f in follows["follows"]] == [alice.did]

        listed = await av.ok("app.bsky.notification.listNotifications", alice)
        reasons = sorted(n["reason"] for n in listed["notifications"])
        assert reasons == ["follow", "follow", "like", "like", "mention", "repost", "repost"]
        # As the reference: with nothing seen yet, only the newest notifications are unread.
        newest = max(n["indexedAt"] for n in listed["notifications"])
        for n in listed["notifications"]:
            assert n["isRead"] is (n["indexedAt"] < newest)
        assert listed["seenAt"] == newest
        only = await av.ok("app.bsky.notification.listNotifications", alice, reasons=["mention"])
        assert [n["author"]["did"] for n in only["notifications"]] == [bob.did]
        assert (await av.ok("app.bsky.notification.getUnreadCount", alice))["count"] == 7
        token = av.token(alice, "app.bsky.notification.updateSeen")
        response = await av.client.post(
            "/xrpc/app.bsky.notification.updateSeen",
            json={"seenAt": newest},
            headers={"authorization": f"Bearer {token}"},
        )
        assert response.status_code == 200, response.text
        assert (await av.ok("app.bsky.notification.getUnreadCount", alice))["count"] == 0
        listed = await av.ok("app.bsky.notification.listNotifications", alice)
        # Read means older than seenAt (the reference's rule): the newest stay unread.
        for n in listed["notifications"]:
            assert n["isRead"] is (n["indexedAt"] < newest)
        assert listed["seenAt"] == newest


async def test_deep_threads_are_bounded_not_errors(
    tmp_path: Path, plc_url: str, network: Net
) -> None:
    upstream, url, _ = network
    (alice,) = await accounts(network, "alice")
    async with serve_appview(appview_config(tmp_path, plc_url, url), upstream) as av:
        root = (await posts_by(av, alice, [("3kaaaaaaaaaa2", post("root"))]))["3kaaaaaaaaaa2"]
        parent = root
        for _ in range(260):
            path = f"app.bsky.feed.post/{alice.clock.next()}"
            value = {**post("deeper"), "reply": {"root": root, "parent": parent}}
            parent = ref(alice, await av.write(alice, {path: value}), path)
        down = await av.get("app.bsky.feed.getPostThread", uri=root["uri"], depth=1000)
        assert down.status_code == 200, down.text
        up = await av.get("app.bsky.feed.getPostThread", uri=parent["uri"], parentHeight=1000)
        assert up.status_code == 200, up.text
        assert levels(down.json()["thread"], "replies") == levels(up.json()["thread"], "parent")
        assert levels(down.json()["thread"], "replies") == MAX_THREAD_LEVELS


def levels(node: dict[str, Any], key: str) -> int:
    count = 0
    while node.get(key):
        node = node[key][0] if key == "replies" else node[key]
        count += 1
    return count


async def test_paths_and_verbs_it_does_not_serve_get_xrpc_error_bodies(
    tmp_path: Path, plc_url: str, network: Net
) -> None:
    upstream, url, _ = network
    async with serve_appview(appview_config(tmp_path, plc_url, url), upstream) as av:
        # A CID with an escaped slash in it no longer fits the image route's shape.
        unrouted = await av.client.get("/img/avatar/plain/did:plc:x/at%3A%2F%2Fx%2Fy")
        posted = await av.client.post("/img/avatar/plain/did:plc:x/bafkrei@jpeg")
    assert (unrouted.status_code, posted.status_code) == (404, 405)
    for answer in (unrouted, posted):
        assert set(answer.json()) == {"error", "message"}, answer.text


async def test_video_embeds_point_where_the_reference_points(
    tmp_path: Path, plc_url: str, network: Net
) -> None:
    """A video embed's playlist and thumbnail: the appview's own /vid/ paths by default, or
    BSKY_VIDEO_*_URL_PATTERN with the DID and CID escaped as URI components, as the reference
    fills them; a pattern without its two %s is refused at start."""
    upstream, url, _ = network
    (alice,) = await accounts(network, "alice")
    video = {
        "$type": "blob",
        "ref": {"$link": "bafkreibme22gw2h7y2h7tg2fhqotaqjucnbc24deqo72b6mkl2egezxhvy"},
        "mimeType": "video/mp4",
        "size": 5000,
    }
    embed = {
        "$type": "app.bsky.embed.video",
        "video": video,
        "alt": "a clip",
        "aspectRatio": {"width": 16, "height": 9},
    }
    cid = video["ref"]["$link"]  # type: ignore[index]
    did = alice.did.replace(":", "%3A")
    patterns = {
        "BSKY_VIDEO_PLAYLIST_URL_PATTERN": "https://video.example/watch/%s/%s/playlist.m3u8",
        "BSKY_VIDEO_THUMBNAIL_URL_PATTERN": "https://video.example/watch/%s/%s/thumbnail.jpg",
    }
    for rkey, env, base in (
        ("3kaaaaaaaaaa2", {}, f"http://localhost:2584/vid/{did}/{cid}"),
        ("3kaaaaaaaaaa3", patterns, f"https://video.example/watch/{did}/{cid}"),
    ):
        config = appview_config(tmp_path / rkey, plc_url, url, **env)
        async with serve_appview(config, upstream) as av:
            await posts_by(av, alice, [(rkey, {**post("watch"), "embed": embed})])
            uri = f"at://{alice.did}/app.bsky.feed.post/{rkey}"
            (view,) = (await av.ok("app.bsky.feed.getPosts", uris=[uri]))["posts"]
            assert view["embed"] == {
                "$type": "app.bsky.embed.video#view",
                "cid": cid,
                "playlist": f"{base}/playlist.m3u8",
                "thumbnail": f"{base}/thumbnail.jpg",
                "alt": "a clip",
                "aspectRatio": {"width": 16, "height": 9},
            }
            media = await av.ok(
                "app.bsky.feed.getAuthorFeed", actor=alice.did, filter="posts_with_video"
            )
            assert uri in [item["post"]["uri"] for item in media["feed"]]
    bad = {"BSKY_VIDEO_PLAYLIST_URL_PATTERN": "https://video.example/watch/playlist.m3u8"}
    with pytest.raises(ConfigError, match="BSKY_VIDEO_PLAYLIST_URL_PATTERN"):
        appview_config(tmp_path / "bad", plc_url, url, **bad)

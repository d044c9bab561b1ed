"""Threadgates and postgates in views, every response checked against its lexicon: the
`allow` rules (mention, follower, following, list, empty) decide each viewer's
`replyDisabled`; the root post and getPostThread carry the threadgate view with its lists and
hidden replies; a postgate's disableRule sets `embeddingDisabled` and a detached quote shows
as #viewDetached; a gate at another post's rkey governs nothing; violations are fixed when a
post is indexed; replies under a hidden reply notify no one above it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from atcore.identity.plc_client import PlcClient
from tests.appview.conftest import Appview, appview_config, serve_appview
from tests.appview.test_appview_index import accounts, record
from tests.appview.test_appview_reads import posts_by
from tests.relay.fake_pds import FakeAccount, FakePds, post

Net = tuple[FakePds, str, PlcClient]
CURATE = "app.bsky.graph.defs#curatelist"


def rule(name: str, **fields: Any) -> dict[str, Any]:
    return {"$type": f"app.bsky.feed.threadgate#{name}", **fields}


def mention(text: str, did: str) -> dict[str, Any]:
    value = post(text)
    feature = {"$type": "app.bsky.richtext.facet#mention", "did": did}
    value["facets"] = [{"index": {"byteStart": 0, "byteEnd": 1}, "features": [feature]}]
    return value


async def view_of(av: Appview, uri: str, viewer: FakeAccount | None) -> dict[str, Any]:
    (view,) = (await av.ok("app.bsky.feed.getPosts", viewer, uris=[uri]))["posts"]
    return dict(view)


async def test_threadgate_rules_and_views(tmp_path: Path, plc_url: str, network: Net) -> None:
    upstream, url, _ = network
    alice, bob, carol, dave, erin = await accounts(network, "alice", "bob", "carol", "dave", "erin")
    async with serve_appview(appview_config(tmp_path, plc_url, url), upstream) as av:
        await av.write(
            alice,
            {
                "app.bsky.graph.list/3kaaaaaaaaaa2": record(
                    "app.bsky.graph.list", name="friends", purpose=CURATE
                )
            },
        )
        friends = f"at://{alice.did}/app.bsky.graph.list/3kaaaaaaaaaa2"
        await av.write(
            alice,
            {
                "app.bsky.graph.listitem/3kaaaaaaaaaa3": record(
                    "app.bsky.graph.listitem", subject=dave.did, list=friends
                )
            },
        )
        await av.write(
            erin,
            {
                "app.bsky.graph.follow/3keeeeeeeee22": record(
                    "app.bsky.graph.follow", subject=alice.did
                )
            },
        )
        await av.write(
            alice,
            {
                "app.bsky.graph.follow/3kaaaaaaaaaa4": record(
                    "app.bsky.graph.follow", subject=carol.did
                )
            },
        )
        roots = await posts_by(
            av,
            alice,
            [
                ("3kaaaaaaaab22", mention("@carol", carol.did)),
                ("3kaaaaaaaab32", post("followers only")),
                ("3kaaaaaaaab42", post("nobody")),
                ("3kaaaaaaaab52", post("people I follow")),
            ],
        )
        gated, followers, nobody, following = (roots[k]["uri"] for k in sorted(roots))
        reply = await posts_by(
            av,
            bob,
            [
                (
                    "3kbbbbbbbbbb2",
                    {
                        **post("hi"),
                        "reply": {"root": roots["3kaaaaaaaab22"], "parent": roots["3kaaaaaaaab22"]},
                    },
                )
            ],
        )
        reply_uri = reply["3kbbbbbbbbbb2"]["uri"]
        gates = {
            "3kaaaaaaaab22": [rule("mentionRule"), rule("listRule", list=friends)],
            "3kaaaaaaaab32": [rule("followerRule")],
            "3kaaaaaaaab42": [],
            "3kaaaaaaaab52": [rule("followingRule")],
        }
        for rkey, allow in gates.items():
            gate = record(
                "app.bsky.feed.threadgate",
                post=roots[rkey]["uri"],
                allow=allow,
                **({"hiddenReplies": [reply_uri]} if rkey == "3kaaaaaaaab22" else {}),
            )
            await av.write(alice, {f"app.bsky.feed.threadgate/{rkey}": gate})

        async def disabled(uri: str, viewer: FakeAccount) -> bool:
            return bool((await view_of(av, uri, viewer))["viewer"]["replyDisabled"])

        assert [await disabled(gated, v) for v in (alice, bob, carol, dave)] == [
            False,
            True,
            False,
            False,
        ]
        assert [await disabled(followers, v) for v in (bob, erin)] == [True, False]
        assert [await disabled(nobody, v) for v in (alice, bob, erin)] == [False, True, True]
        assert [await disabled(following, v) for v in (bob, carol)] == [True, False]
        # The reply's view follows its root's gate; without a viewer there is no answer.
        assert await disabled(reply_uri, bob) is True
        assert "replyDisabled" not in (await view_of(av, gated, None)).get("viewer", {})

        root_view = await view_of(av, gated, None)
        gate_view = root_view["threadgate"]
        assert gate_view["uri"] == f"at://{alice.did}/app.bsky.feed.threadgate/3kaaaaaaaab22"
        assert [(entry["uri"], entry["listItemCount"]) for entry in gate_view["lists"]] == [
            (friends, 1)
        ]
        assert "threadgate" not in await view_of(av, reply_uri, None)

        thread = await av.ok("app.bsky.feed.getPostThread", bob, uri=reply_uri)
        assert thread["threadgate"]["record"]["hiddenReplies"] == [reply_uri]
        assert thread["thread"]["parent"]["post"]["threadgate"]["uri"] == gate_view["uri"]

        # A gate stored at another post's rkey governs nothing.
        free = await posts_by(av, alice, [("3kaaaaaaaab62", post("open"))])
        stray = record("app.bsky.feed.threadgate", post=free["3kaaaaaaaab62"]["uri"], allow=[])
        await av.write(alice, {"app.bsky.feed.threadgate/3kaaaaaaaab72": stray})
        open_view = await view_of(av, free["3kaaaaaaaab62"]["uri"], bob)
        assert "threadgate" not in open_view and "replyDisabled" not in open_view["viewer"]

        # Deleting the gate opens the thread.
        await av.write(alice, {"app.bsky.feed.threadgate/3kaaaaaaaab42": None})
        assert "replyDisabled" not in (await view_of(av, nobody, bob))["viewer"]


async def test_postgate_embedding_rules(tmp_path: Path, plc_url: str, network: Net) -> None:
    upstream, url, _ = network
    alice, bob = await accounts(network, "alice", "bob")
    async with serve_appview(appview_config(tmp_path, plc_url, url), upstream) as av:
        original = (await posts_by(av, alice, [("3kaaaaaaaaaa2", post("original"))]))[
            "3kaaaaaaaaaa2"
        ]
        quote = {"$type": "app.bsky.embed.record", "record": original}
        quotes = await posts_by(
            av,
            bob,
            [
                ("3kbbbbbbbbbb2", {**post("quote"), "embed": quote}),
                ("3kbbbbbbbbbb3", {**post("kept"), "embed": quote}),
            ],
        )
        detached_uri, kept_uri = quotes["3kbbbbbbbbbb2"]["uri"], quotes["3kbbbbbbbbbb3"]["uri"]
        assert (await view_of(av, detached_uri, None))["embed"]["record"]["uri"] == original["uri"]
        gate = record(
            "app.bsky.feed.postgate",
            post=original["uri"],
            embeddingRules=[{"$type": "app.bsky.feed.postgate#disableRule"}],
            detachedEmbeddingUris=[detached_uri],
        )
        await av.write(alice, {"app.bsky.feed.postgate/3kaaaaaaaaaa2": gate})

        embed = (await view_of(av, detached_uri, None))["embed"]["record"]
        assert embed == {
            "$type": "app.bsky.embed.record#viewDetached",
            "uri": original["uri"],
            "detached": True,
        }
        kept = (await view_of(av, kept_uri, bob))["embed"]["record"]
        assert kept["$type"] == "app.bsky.embed.record#viewRecord"
        assert (await view_of(av, original["uri"], bob))["viewer"]["embeddingDisabled"] is True
        assert (await view_of(av, original["uri"], alice))["viewer"]["embeddingDisabled"] is False
        feed = await av.ok("app.bsky.feed.getAuthorFeed", actor=bob.did)
        kinds = {i["post"]["uri"]: i["post"]["embed"]["record"]["$type"] for i in feed["feed"]}
        assert kinds[detached_uri] == "app.bsky.embed.record#viewDetached"

        await av.write(alice, {"app.bsky.feed.postgate/3kaaaaaaaaaa2": None})
        assert (await view_of(av, original["uri"], bob))["viewer"]["embeddingDisabled"] is False
        again = (await view_of(av, detached_uri, None))["embed"]["record"]
        assert again["$type"] == "app.bsky.embed.record#viewRecord"


async def notified(av: Appview, did: str) -> list[str]:
    rows = await av.ctx.db.read(
        lambda c: c.execute("SELECT reason FROM notification WHERE did = ?", (did,)).fetchall()
    )
    return sorted(reason for (reason,) in rows)


async def test_violations_are_fixed_when_indexed(
    tmp_path: Path, plc_url: str, network: Net
) -> None:
    upstream, url, _ = network
    alice, bob = await accounts(network, "alice", "bob")
    async with serve_appview(appview_config(tmp_path, plc_url, url), upstream) as av:
        root = (await posts_by(av, alice, [("3kaaaaaaaaaa2", post("root"))]))["3kaaaaaaaaaa2"]
        to_root = {"root": root, "parent": root}
        early = await posts_by(av, bob, [("3kbbbbbbbbbb2", {**post("early"), "reply": to_root})])
        gate = record("app.bsky.feed.threadgate", post=root["uri"], allow=[])
        await av.write(alice, {"app.bsky.feed.threadgate/3kaaaaaaaaaa2": gate})
        late = await posts_by(av, bob, [("3kbbbbbbbbbb3", {**post("late"), "reply": to_root})])
        late_uri = late["3kbbbbbbbbbb3"]["uri"]

        # The reply made before the gate stays; the one after is not counted, notifies no
        # one, is left out of the thread and shows alone and without reply context.
        assert (await view_of(av, root["uri"], None))["replyCount"] == 1
        assert await notified(av, alice.did) == ["reply"]
        thread = await av.ok("app.bsky.feed.getPostThread", uri=root["uri"])
        replies = [node["post"]["uri"] for node in thread["thread"]["replies"]]
        assert replies == [early["3kbbbbbbbbbb2"]["uri"]]
        alone = await av.ok("app.bsky.feed.getPostThread", uri=late_uri)
        assert "parent" not in alone["thread"]
        assert (await view_of(av, late_uri, alice))["viewer"]["replyDisabled"] is True
        feed = await av.ok("app.bsky.feed.getAuthorFeed", actor=bob.did)
        context = {i["post"]["uri"]: "reply" in i for i in feed["feed"]}
        assert context == {late_uri: False, early["3kbbbbbbbbbb2"]["uri"]: True}
        # Deleting it leaves the count alone (it never counted).
        await av.write(bob, {"app.bsky.feed.post/3kbbbbbbbbbb3": None})
        assert (await view_of(av, root["uri"], None))["replyCount"] == 1

        # A quote its post's postgate refuses is detached and notifies no one.
        postgate = record(
            "app.bsky.feed.postgate",
            post=root["uri"],
            embeddingRules=[{"$type": "app.bsky.feed.postgate#disableRule"}],
        )
        await av.write(alice, {"app.bsky.feed.postgate/3kaaaaaaaaaa2": postgate})
        embed = {"$type": "app.bsky.embed.record", "record": root}
        quote = await posts_by(av, bob, [("3kbbbbbbbbbb4", {**post("quote"), "embed": embed})])
        shown = (await view_of(av, quote["3kbbbbbbbbbb4"]["uri"], None))["embed"]["record"]
        assert shown["$type"] == "app.bsky.embed.record#viewDetached"
        assert await notified(av, alice.did) == ["reply"]


async def test_replies_to_a_hidden_reply_notify_no_one_above_it(
    tmp_path: Path, plc_url: str, network: Net
) -> None:
    upstream, url, _ = network
    alice, bob, carol = await accounts(network, "alice", "bob", "carol")
    async with serve_appview(appview_config(tmp_path, plc_url, url), upstream) as av:
        root = (await posts_by(av, alice, [("3kaaaaaaaaaa2", post("root"))]))["3kaaaaaaaaaa2"]
        hidden = await posts_by(
            av, bob, [("3kbbbbbbbbbb2", {**post("rude"), "reply": {"root": root, "parent": root}})]
        )
        shown = await posts_by(
            av, bob, [("3kbbbbbbbbbb3", {**post("fine"), "reply": {"root": root, "parent": root}})]
        )
        gate = record(
            "app.bsky.feed.threadgate",
            post=root["uri"],
            hiddenReplies=[hidden["3kbbbbbbbbbb2"]["uri"]],
        )
        await av.write(alice, {"app.bsky.feed.threadgate/3kaaaaaaaaaa2": gate})
        assert await notified(av, alice.did) == ["reply", "reply"]
        for rkey, parent in (("3kcccccccccc2", hidden), ("3kcccccccccc3", shown)):
            (ref,) = parent.values()
            value = {**post("below"), "reply": {"root": root, "parent": ref}}
            await posts_by(av, carol, [(rkey, value)])
        # Bob hears of both replies; alice only of the one under the reply she did not hide.
        assert await notified(av, bob.did) == ["reply", "reply"]
        assert await notified(av, alice.did) == ["reply", "reply", "reply"]
        # As the reference's (v1) getPostThread: hidden replies stay in the thread and clients
        # hide them by the gate's hiddenReplies, which the response carries.
        thread = await av.ok("app.bsky.feed.getPostThread", uri=root["uri"])
        assert thread["threadgate"]["record"]["hiddenReplies"] == [hidden["3kbbbbbbbbbb2"]["uri"]]

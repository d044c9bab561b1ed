"""Notification preferences and priority, every response checked against its lexicon:
getPreferences' defaults, putPreferencesV2 merging what is given (chat stays at its default, as
the reference), putPreferences' `priority` as the default of listNotifications' and
getUnreadCount's `priority` (only notifications from followed accounts), bad input 4xx."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from atcore.identity.plc_client import PlcClient
from tests.appview.conftest import Appview, appview_config, serve_appview
from tests.appview.test_appview_index import accounts, record
from tests.appview.test_appview_reads import posts_by
from tests.relay.fake_pds import FakeAccount, FakePds, post

Net = tuple[FakePds, str, PlcClient]


async def procedure(av: Appview, nsid: str, viewer: FakeAccount, body: Any) -> httpx.Response:
    headers = {"authorization": f"Bearer {av.token(viewer, nsid)}"}
    return await av.client.post(f"/xrpc/{nsid}", json=body, headers=headers)


async def test_preferences_and_priority(tmp_path: Path, plc_url: str, network: Net) -> None:
    upstream, url, _ = network
    alice, bob, carol = await accounts(network, "alice", "bob", "carol")
    async with serve_appview(appview_config(tmp_path, plc_url, url), upstream) as av:
        prefs = (await av.ok("app.bsky.notification.getPreferences", alice))["preferences"]
        assert prefs["like"] == {"include": "all", "list": True, "push": True}
        assert prefs["verified"] == {"list": True, "push": True}

        change = {
            "like": {"include": "follows", "list": True, "push": False},
            "chat": {"include": "accepted", "push": False},
        }
        put = await procedure(av, "app.bsky.notification.putPreferencesV2", alice, change)
        assert put.status_code == 200, put.text
        prefs = (await av.ok("app.bsky.notification.getPreferences", alice))["preferences"]
        assert prefs["like"] == change["like"]
        assert prefs["chat"] == {"include": "all", "push": True}
        assert prefs["reply"] == {"include": "all", "list": True, "push": True}
        # Bob's settings are his own.
        bobs = (await av.ok("app.bsky.notification.getPreferences", bob))["preferences"]
        assert bobs["like"]["push"] is True

        liked = (await posts_by(av, alice, [("3kaaaaaaaaaa2", post("hi"))]))["3kaaaaaaaaaa2"]
        follow = record("app.bsky.graph.follow", subject=bob.did)
        await av.write(alice, {"app.bsky.graph.follow/3kaaaaaaaaaa3": follow})
        for who, rkey in ((bob, "3kbbbbbbbbbb2"), (carol, "3kcccccccccc2")):
            like = record("app.bsky.feed.like", subject=liked)
            await av.write(who, {f"app.bsky.feed.like/{rkey}": like})

        async def authors(**params: Any) -> tuple[list[str], bool]:
            body = await av.ok("app.bsky.notification.listNotifications", alice, **params)
            return sorted(n["author"]["did"] for n in body["notifications"]), body["priority"]

        assert await authors() == (sorted([bob.did, carol.did]), False)
        assert await authors(priority="true") == ([bob.did], True)
        unread = await av.ok("app.bsky.notification.getUnreadCount", alice, priority="true")
        assert unread["count"] == 1

        put = await procedure(av, "app.bsky.notification.putPreferences", alice, {"priority": True})
        assert put.status_code == 200, put.text
        assert await authors() == ([bob.did], True)
        assert await authors(priority="false") == (sorted([bob.did, carol.did]), False)
        assert (await av.ok("app.bsky.notification.getUnreadCount", alice))["count"] == 1

        bad = await procedure(av, "app.bsky.notification.putPreferences", alice, {})
        assert bad.status_code == 400
        wrong = await procedure(
            av, "app.bsky.notification.putPreferencesV2", alice, {"like": {"include": 3}}
        )
        assert wrong.status_code == 400
        anonymous = await av.client.get("/xrpc/app.bsky.notification.getPreferences")
        assert anonymous.status_code == 401
        bad_param = await av.get("app.bsky.notification.listNotifications", alice, priority="x")
        assert bad_param.status_code == 400

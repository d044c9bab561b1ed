"""getFeed end to end: PLC, two PDSes, relay and appview as processes, and a real feed
generator that verifies service-auth JWTs with atcore.service_auth. The PyPI SDK's
`app.bsky.feed.get_feed` through the viewer's PDS works because the PDS mints the token for
the generator (aud its DID, lxm getFeedSkeleton) and the appview passes it on."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from atproto import Client
from atproto_client.exceptions import BadRequestError  # type: ignore[import-untyped]

from atcore.identity.plc_client import PlcClient
from tests.appview.test_appview_feeds import feed_generator
from tests.appview.test_appview_network import Network, account, eventually, login

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def test_sdk_get_feed_through_the_pds(tmp_path: Path) -> None:
    net = await asyncio.to_thread(Network, tmp_path)
    requests: list[Any] = []
    try:
        async with httpx.AsyncClient() as http:
            async with feed_generator(net.plc.url, PlcClient(net.plc.url, http)) as gen:
                await _session(net, gen, requests)
    finally:
        for request in requests:
            request.close()
        await asyncio.to_thread(net.stop)


async def _session(net: Network, gen: Any, requests: list[Any]) -> None:
    account(net.pds[0].url, "alice")
    bob_did = account(net.pds[1].url, "bob")
    alice: Client = await asyncio.to_thread(login, net.pds[0].url, "alice", requests)
    bob: Client = await asyncio.to_thread(login, net.pds[1].url, "bob", requests)
    generator = {
        "$type": "app.bsky.feed.generator",
        "did": gen.did,
        "displayName": "Cats",
        "createdAt": "2026-12-07T12:00:00.000Z",
    }
    data = {
        "repo": alice.me.did,
        "collection": "app.bsky.feed.generator",
        "rkey": "cats",
        "record": generator,
    }
    await asyncio.to_thread(alice.com.atproto.repo.create_record, data)
    meow = await asyncio.to_thread(alice.send_post, "meow")
    feed_uri = f"at://{alice.me.did}/app.bsky.feed.generator/cats"
    gen.items = [{"post": meow.uri}]
    gen.feeds = [feed_uri]

    def indexed() -> bool:
        url = f"{net.appview.url}/xrpc/app.bsky.feed.getPosts"
        return bool(httpx.get(url, params={"uris": meow.uri}).json()["posts"])

    await asyncio.to_thread(eventually, indexed)
    got = await asyncio.to_thread(bob.app.bsky.feed.get_feed, {"feed": feed_uri})
    assert [item.post.uri for item in got.feed] == [meow.uri]
    assert got.feed[0].post.author.handle == "alice.test"
    # The generator verified a token naming it as audience, issued for bob.
    assert gen.callers[-1] == bob_did

    info = await asyncio.to_thread(bob.app.bsky.feed.get_feed_generator, {"feed": feed_uri})
    assert (info.view.did, info.is_online, info.is_valid) == (gen.did, True, True)

    unknown = f"at://{alice.me.did}/app.bsky.feed.generator/nope"
    with pytest.raises(BadRequestError) as caught:
        await asyncio.to_thread(bob.app.bsky.feed.get_feed, {"feed": unknown})
    assert caught.value.response.content.error == "UnknownFeed"
    with pytest.raises(BadRequestError) as caught:
        await asyncio.to_thread(bob.app.bsky.feed.get_feed, {"feed": "not-a-feed"})
    assert caught.value.response.content.error == "InvalidRequest"

"""Mutes, search and relationships on a real network (PLC, two PDSes, relay and appview
processes) through the PyPI SDK: a mute made through the PDS's proxy is private to its viewer
and takes the muted account out of the viewer's timeline; posts and actors are found by full
text across PDSes; relationships name the follow records."""

from __future__ import annotations

import httpx
import pytest
from atproto_client.request import Request  # type: ignore[import-untyped]

# The network and requests fixtures are the core network test's own.
from tests.appview.test_appview_network import (  # noqa: F401
    Network,
    account,
    eventually,
    login,
    network,
    profile,
    requests,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_sdk_mutes_search_and_relationships(
    network: Network,  # noqa: F811
    requests: list[Request],  # noqa: F811
) -> None:
    alice_did = account(network.pds[0].url, "alice")
    bob_did = account(network.pds[1].url, "bob")
    for did in (alice_did, bob_did):
        eventually(lambda did=did: profile(network, did)["handle"] != "handle.invalid")
    alice = login(network.pds[0].url, "alice", requests)
    bob = login(network.pds[1].url, "bob", requests)

    follow = alice.follow(bob_did)
    post = bob.send_post("searchable zebra crossing")
    eventually(lambda: alice.get_timeline().feed)

    found = eventually(lambda: alice.app.bsky.feed.search_posts({"q": "zebra"}).posts, timeout=20)
    assert [p.uri for p in found] == [post.uri]
    actors = alice.app.bsky.actor.search_actors({"q": "bob"}).actors
    assert [a.did for a in actors] == [bob_did]
    typeahead = alice.app.bsky.actor.search_actors_typeahead({"q": "bob.te"}).actors
    assert [a.did for a in typeahead] == [bob_did]

    assert alice.mute(bob_did)
    assert alice.get_timeline().feed == []
    assert [m.did for m in alice.app.bsky.graph.get_mutes().mutes] == [bob_did]
    assert alice.get_profile(bob_did).viewer.muted is True
    assert bob.app.bsky.graph.get_mutes().mutes == []
    assert alice.unmute(bob_did)
    assert [item.post.uri for item in alice.get_timeline().feed] == [post.uri]

    relations = httpx.get(
        f"{network.appview.url}/xrpc/app.bsky.graph.getRelationships",
        params={"actor": alice_did, "others": [bob_did]},
    ).json()["relationships"]
    assert relations == [
        {"$type": "app.bsky.graph.defs#relationship", "did": bob_did, "following": follow.uri}
    ]

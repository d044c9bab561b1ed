"""Backfill on a real network: PLC, two PDSes, a relay and the appview as processes, and a third
PDS the relay has never crawled. Its accounts' posts, made before the appview heard of them,
show up after `skyloft appview backfill --host` (run beside the serving appview), with exact
counts; a deactivated account there is hidden, not fetched. When the relay then crawls that PDS
and replays its history, the events the backfill covered are dropped and the new ones applied
once. Runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from atproto_client.request import Request  # type: ignore[import-untyped]

from atcore.syntax.datetime import now_iso
from tests.appview.test_appview_network import (  # noqa: F401 (fixtures)
    PASSWORD,
    Network,
    account,
    eventually,
    login,
    network,
    profile,
    requests,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BEFORE = 5


def session(pds_url: str, name: str) -> dict[str, str]:
    """Authorization for `name` (the SDK's login would also fetch the profile, which the appview
    does not have yet for the accounts of the PDS it never heard of)."""
    body = {"identifier": f"{name}.test", "password": PASSWORD}
    response = httpx.post(f"{pds_url}/xrpc/com.atproto.server.createSession", json=body)
    assert response.status_code == 200, response.text
    return {"authorization": f"Bearer {response.json()['accessJwt']}"}


def send_post(pds_url: str, auth: dict[str, str], did: str, text: str) -> dict[str, str]:
    record = {"$type": "app.bsky.feed.post", "text": text, "createdAt": now_iso()}
    body = {"repo": did, "collection": "app.bsky.feed.post", "record": record}
    response = httpx.post(f"{pds_url}/xrpc/com.atproto.repo.createRecord", json=body, headers=auth)
    assert response.status_code == 200, response.text
    return {"uri": response.json()["uri"], "cid": response.json()["cid"]}


def author_texts(net: Network, did: str) -> list[str]:
    response = httpx.get(
        f"{net.appview.url}/xrpc/app.bsky.feed.getAuthorFeed",
        params={"actor": did, "limit": 100},
    )
    assert response.status_code == 200, response.text
    return sorted(item["post"]["record"]["text"] for item in response.json()["feed"])


def test_a_host_the_appview_never_saw_is_backfilled_then_followed(
    tmp_path: Path,
    network: Network,  # noqa: F811
    requests: list[Request],  # noqa: F811
) -> None:
    net = network
    appview_did = httpx.get(f"{net.appview.url}/.well-known/did.json").json()["id"]
    pds_env = {
        "PDS_DEV_MODE": "true",
        "PDS_DID_PLC_URL": net.plc.url,
        "PDS_BSKY_APP_VIEW_URL": net.appview.url,
        "PDS_BSKY_APP_VIEW_DID": appview_did,
    }
    hidden = net.start("pds", "pds3", pds_env)  # no PDS_CRAWLERS: the relay never hears of it
    bob_did = account(net.pds[0].url, "bob")
    carol_did = account(hidden.url, "carol")
    dave_did = account(hidden.url, "dave")
    carol = session(hidden.url, "carol")
    posts = [send_post(hidden.url, carol, carol_did, f"before {n}") for n in range(BEFORE)]
    dave = session(hidden.url, "dave")
    send_post(hidden.url, dave, dave_did, "dave's")
    deactivate = f"{hidden.url}/xrpc/com.atproto.server.deactivateAccount"
    assert httpx.post(deactivate, json={}, headers=dave).status_code == 200
    bob = login(net.pds[0].url, "bob", requests)
    bob.follow(carol_did)
    bob.like(posts[0]["uri"], posts[0]["cid"])
    eventually(lambda: profile(net, bob_did)["followsCount"] == 1)
    unknown = httpx.get(
        f"{net.appview.url}/xrpc/app.bsky.actor.getProfile", params={"actor": carol_did}
    )
    assert unknown.status_code == 400, unknown.text

    backfill = subprocess.run(
        [sys.executable, "-m", "skyloft", "appview", "backfill", "--host", hidden.url],
        env={
            **os.environ,
            "BSKY_DATA_DIRECTORY": str(tmp_path / "appview"),
            "BSKY_DID_PLC_URL": net.plc.url,
            "BSKY_DEV_MODE": "true",
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert backfill.returncode == 0, backfill.stderr
    assert "repos [" in backfill.stderr and " 1/1 " in backfill.stderr, backfill.stderr
    before = sorted(f"before {n}" for n in range(BEFORE))
    assert author_texts(net, carol_did) == before
    shown = profile(net, carol_did)
    assert (shown["handle"], shown["postsCount"], shown["followersCount"]) == (
        "carol.test",
        BEFORE,
        1,
    )
    liked = httpx.get(
        f"{net.appview.url}/xrpc/app.bsky.feed.getPosts", params={"uris": [posts[0]["uri"]]}
    ).json()["posts"]
    assert [view["likeCount"] for view in liked] == [1]
    response = httpx.get(
        f"{net.appview.url}/xrpc/app.bsky.actor.getProfile", params={"actor": dave_did}
    )
    assert (response.status_code, response.json()["error"]) == (400, "AccountDeactivated")

    # The PDS asks the relay to crawl it, which replays its history from the start: the
    # commits the backfill covered are dropped, the ones after it applied once.
    port = int(hidden.url.rsplit(":", 1)[1])
    hidden.terminate()
    hidden.stop()
    hidden = net.start("pds", "pds3", {**pds_env, "PDS_CRAWLERS": net.relay.url}, port)
    for n in range(3):
        send_post(hidden.url, carol, carol_did, f"after {n}")
    after = sorted([*before, "after 0", "after 1", "after 2"])
    eventually(lambda: author_texts(net, carol_did) == after, timeout=30)
    assert profile(net, carol_did)["postsCount"] == BEFORE + 3
    assert profile(net, bob_did)["followsCount"] == 1

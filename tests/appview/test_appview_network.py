"""The appview on a real network: PLC, two PDSes, a relay and the appview as processes on free
ports. The PyPI SDK's plain `Client.login()` (which fetches the profile through the PDS's
proxy) works, a followed account's post on the other PDS reaches the follower's timeline, likes
and replies show in counts, the thread and notifications, and a kill -9 of the appview in the
middle of a stream of writes loses and doubles nothing once it is restarted; an avatar URL in a
profile is served by the appview's own image service. Each runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from atproto import Client
from atproto_client.request import Request  # type: ignore[import-untyped]
from PIL import Image

from skyloft.services import ServiceProcess
from tests.appview_images.pictures import jpeg_with_exif

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PASSWORD = "correct horse battery"


class Network:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.processes: list[ServiceProcess] = []
        self.plc = self.start("plc", "plc", {})
        self.relay = self.start(
            "relay", "relay", {"RELAY_DEV_MODE": "true", "RELAY_PLC_HOST": self.plc.url}
        )
        self.appview = self.start_appview()
        self.appview_port = int(self.appview.url.rsplit(":", 1)[1])
        did = httpx.get(f"{self.appview.url}/.well-known/did.json").json()["id"]
        pds_env = {
            "PDS_DEV_MODE": "true",
            "PDS_DID_PLC_URL": self.plc.url,
            "PDS_CRAWLERS": self.relay.url,
            "PDS_BSKY_APP_VIEW_URL": self.appview.url,
            "PDS_BSKY_APP_VIEW_DID": did,
        }
        self.pds = [self.start("pds", f"pds{n}", pds_env) for n in (1, 2)]

    def start(self, kind: str, name: str, env: dict[str, str], port: int = 0) -> ServiceProcess:
        process = ServiceProcess(kind, self.root / name, port=port, env=env)
        self.processes.append(process)
        return process

    def start_appview(self, port: int = 0) -> ServiceProcess:
        env = {
            "BSKY_REPO_PROVIDER": self.relay.url,
            "BSKY_DID_PLC_URL": self.plc.url,
            "BSKY_DEV_MODE": "true",
        }
        return self.start("appview", "appview", env, port)

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.terminate()
        for process in self.processes:
            process.stop()


@pytest.fixture
def network(tmp_path: Path, store: str) -> Iterator[Network]:
    """The network, its appview on each store in turn (the `store` fixture's environment
    reaches the appview's process)."""
    net = Network(tmp_path)
    try:
        yield net
    finally:
        net.stop()


def eventually(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
            if result:
                return result
        except (AssertionError, httpx.HTTPError):
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise AssertionError("condition never held")
        time.sleep(0.1)


def account(pds_url: str, name: str) -> str:
    body = {"handle": f"{name}.test", "email": f"{name}@example.test", "password": PASSWORD}
    response = httpx.post(f"{pds_url}/xrpc/com.atproto.server.createAccount", json=body)
    response.raise_for_status()
    did: str = response.json()["did"]
    return did


def profile(net: Network, did: str) -> dict[str, Any]:
    response = httpx.get(f"{net.appview.url}/xrpc/app.bsky.actor.getProfile", params={"actor": did})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture
def requests() -> Iterator[list[Request]]:
    """The SDK's HTTP clients (one per session: each keeps its session's headers), closed at
    the end of the test."""
    made: list[Request] = []
    yield made
    for request in made:
        request.close()


def login(pds_url: str, name: str, requests: list[Request]) -> Client:
    requests.append(Request())
    client = Client(base_url=pds_url, request=requests[-1])
    client.login(f"{name}.test", PASSWORD)
    return client


def test_sdk_session_timeline_thread_notifications(
    network: Network, requests: list[Request]
) -> None:
    alice_did = account(network.pds[0].url, "alice")
    bob_did = account(network.pds[1].url, "bob")
    for did in (alice_did, bob_did):
        eventually(lambda did=did: profile(network, did))
    alice = login(network.pds[0].url, "alice", requests)
    bob = login(network.pds[1].url, "bob", requests)
    assert alice.me is not None and alice.me.did == alice_did

    alice.follow(bob_did)
    post = bob.send_post("hello from the other PDS")
    timeline = eventually(lambda: alice.get_timeline().feed)
    assert [item.post.uri for item in timeline] == [post.uri]

    alice.like(post.uri, post.cid)
    ref = {"uri": post.uri, "cid": post.cid}
    alice.send_post("a reply", reply_to={"root": ref, "parent": ref})

    def counted() -> bool:
        (view,) = bob.get_posts([post.uri]).posts
        return view.like_count == 1 and view.reply_count == 1

    eventually(counted)
    thread = bob.get_post_thread(post.uri).thread
    assert [reply.post.author.did for reply in thread.replies] == [alice_did]
    assert profile(network, bob_did)["followersCount"] == 1

    def reasons() -> list[str] | None:
        listed = bob.app.bsky.notification.list_notifications().notifications
        return sorted(n.reason for n in listed) if len(listed) == 3 else None

    assert eventually(reasons) == ["follow", "like", "reply"]


def test_kill_mid_stream_loses_and_doubles_nothing(
    network: Network, requests: list[Request]
) -> None:
    alice_did = account(network.pds[0].url, "alice")
    bob_did = account(network.pds[1].url, "bob")
    eventually(lambda: profile(network, bob_did))
    alice = login(network.pds[0].url, "alice", requests)
    post = alice.send_post("like me")
    bob = login(network.pds[1].url, "bob", requests)
    writes = 60
    for n in range(writes):
        if n == writes // 2:
            network.appview.kill()
        bob.send_post(f"post {n}")
    bob.like(post.uri, post.cid)
    network.appview = network.start_appview(network.appview_port)

    eventually(lambda: profile(network, bob_did)["postsCount"] == writes, timeout=30)
    assert profile(network, alice_did)["postsCount"] == 1
    session = alice.app.bsky.notification.list_notifications()
    assert [n.reason for n in session.notifications] == ["like"]
    feed = httpx.get(
        f"{network.appview.url}/xrpc/app.bsky.feed.getAuthorFeed",
        params={"actor": bob_did, "limit": 100},
    ).json()["feed"]
    texts = [item["post"]["record"]["text"] for item in feed]
    assert sorted(texts) == sorted(f"post {n}" for n in range(writes))


def test_avatar_url_in_a_profile_is_served_by_the_appview(network: Network) -> None:
    pds = network.pds[0].url
    carol_did = account(pds, "carol")
    session = httpx.post(
        f"{pds}/xrpc/com.atproto.server.createSession",
        json={"identifier": "carol.test", "password": PASSWORD},
    ).json()
    auth = {"authorization": f"Bearer {session['accessJwt']}"}
    uploaded = httpx.post(
        f"{pds}/xrpc/com.atproto.repo.uploadBlob",
        content=jpeg_with_exif(640, 480),
        headers={**auth, "content-type": "image/jpeg"},
    )
    assert uploaded.status_code == 200, uploaded.text
    record = {"$type": "app.bsky.actor.profile", "avatar": uploaded.json()["blob"]}
    put = httpx.post(
        f"{pds}/xrpc/com.atproto.repo.putRecord",
        json={
            "repo": carol_did,
            "collection": "app.bsky.actor.profile",
            "rkey": "self",
            "record": record,
        },
        headers=auth,
    )
    assert put.status_code == 200, put.text
    avatar = eventually(lambda: profile(network, carol_did).get("avatar"))
    port = network.appview_port
    assert avatar.startswith(f"http://localhost:{port}/img/avatar/plain/{carol_did}/")
    served = httpx.get(avatar)
    assert served.status_code == 200, served.text
    assert served.headers["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(served.content)) as image:
        assert image.format == "JPEG" and image.size == (1000, 1000)
        assert "exif" not in image.info

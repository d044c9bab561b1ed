"""The network follows a migration (spec-account.md, "PDS Account Migration"; issue 13): PLC,
two PDSes, a relay and the appview as processes on free ports. A follower on the other PDS sees
the account's posts in its timeline (PyPI SDK) before `skyloft account migrate`; after it, the
relay serves the account from the new host and ignores the old host's deactivation, the appview
shows the same DID, handle and followers, and a post made on the new PDS reaches the follower.
The same after `skyloft account recover` from a backup and a rotation key, the old PDS dead."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from atproto import Client
from atproto_client.request import Request  # type: ignore[import-untyped]

from tests.account.scenario import NEW_PASSWORD, LogCodes, migrate_command, resume
from tests.account.test_backup import ENV, add_rotation_key
from tests.appview.test_appview_network import (  # noqa: F401 (fixtures)
    Network,
    eventually,
    network,
    profile,
    requests,
)
from tests.pds.conftest import PASSWORD

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def store() -> str:
    """The appview's store for the `network` fixture: the embedded default here (the appview's
    own tests run on PostgreSQL as well)."""
    return "sqlite"


def sign_up(pds_url: str, name: str) -> str:
    body = {"handle": f"{name}.test", "email": f"{name}@example.test", "password": PASSWORD}
    response = httpx.post(f"{pds_url}/xrpc/com.atproto.server.createAccount", json=body)
    assert response.status_code == 200, response.text
    did: str = response.json()["did"]
    return did


def login(pds_url: str, name: str, password: str, opened: list[Request]) -> Client:
    opened.append(Request())
    client = Client(base_url=pds_url, request=opened[-1])
    client.login(f"{name}.test", password)
    return client


def timeline_texts(client: Client) -> list[str]:
    return [item.post.record.text for item in client.get_timeline().feed]


def relay_get(net: Network, nsid: str, did: str) -> dict[str, Any]:
    response = httpx.get(f"{net.relay.url}/xrpc/{nsid}", params={"did": did})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def followed(net: Network, opened: list[Request]) -> tuple[str, Client]:
    """alice on the first PDS, followed by bob on the second, who sees her post; alice's DID
    and bob's session."""
    old, new = (pds.url for pds in net.pds)
    alice_did = sign_up(old, "alice")
    bob_did = sign_up(new, "bob")
    for did in (alice_did, bob_did):
        eventually(lambda did=did: profile(net, did))
    alice = login(old, "alice", PASSWORD, opened)
    bob = login(new, "bob", PASSWORD, opened)
    bob.follow(alice_did)
    alice.send_post("before the move")
    assert eventually(lambda: timeline_texts(bob)) == ["before the move"]
    assert eventually(lambda: profile(net, alice_did)["followersCount"] == 1)
    return alice_did, bob


def still_followed(net: Network, alice_did: str, bob: Client, opened: list[Request]) -> None:
    """alice, now on the second PDS: the relay serves her from there, the appview shows the
    same DID, handle and follower, and her new post reaches bob's timeline."""
    new = net.pds[1].url
    status = relay_get(net, "com.atproto.sync.getRepoStatus", alice_did)
    assert status["active"] is True, status
    alice = login(new, "alice", NEW_PASSWORD, opened)
    alice.send_post("after the move")
    assert eventually(lambda: timeline_texts(bob) == ["after the move", "before the move"])
    shown = profile(net, alice_did)
    assert (shown["did"], shown["handle"]) == (alice_did, "alice.test")
    assert shown["followersCount"] == 1 and shown["postsCount"] == 2
    rev = relay_get(net, "com.atproto.sync.getLatestCommit", alice_did)["rev"]
    on_new = httpx.get(
        f"{new}/xrpc/com.atproto.sync.getLatestCommit", params={"did": alice_did}
    ).json()["rev"]
    assert rev == on_new


def test_a_follower_keeps_following_an_account_that_moved(
    tmp_path: Path,
    network: Network,  # noqa: F811
    requests: list[Request],  # noqa: F811
) -> None:
    net = network
    alice_did, bob = followed(net, requests)
    old, new = (pds.url for pds in net.pds)
    state = tmp_path / "alice.json"
    command = migrate_command(alice_did, new, net.plc.url, state, "--relay", net.relay.url)
    checked = resume(command, LogCodes(net.pds[0].log_path))
    assert re.search(r"^ok: relay", checked, re.M), checked

    # The old host's deactivation, sent after the new host's activation, was not taken from it.
    old_host = re.escape(old.removeprefix("http://").replace("127.0.0.1", "localhost"))
    relay_log = net.relay.log_path.read_text()
    assert re.search(rf"dropped event from {old_host} for {alice_did}", relay_log), relay_log
    still_followed(net, alice_did, bob, requests)


def test_a_follower_keeps_following_an_account_recovered_without_its_server(
    tmp_path: Path,
    network: Network,  # noqa: F811
    requests: list[Request],  # noqa: F811
) -> None:
    net = network
    alice_did, bob = followed(net, requests)
    plc, new = net.plc.url, net.pds[1].url
    key_file, backup = tmp_path / "alice.key", tmp_path / "backup"
    add_rotation_key(plc, alice_did, key_file, net.pds[0].log_path)
    tool = [sys.executable, "-m", "skyloft", "account"]
    made = subprocess.run(
        [*tool, "backup", "--account", alice_did, "--out", str(backup), "--plc", plc],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr

    net.pds[0].kill()  # the old server is gone for good
    recover = [*tool, "recover", "--backup", str(backup), "--rotation-key", str(key_file)]
    recover += ["--to", new, "--plc", plc, "--email", "alice@example.test"]
    env = {**os.environ, "SKYLOFT_NEW_PASSWORD": NEW_PASSWORD}
    done = subprocess.run(recover, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    still_followed(net, alice_did, bob, requests)

"""`skyloft account migrate` between two real PDS processes and the PLC directory: an account
with posts, likes, follows, an avatar and 50 image blobs, killed in the middle of the blob copy
and resumed (spec-account.md, "PDS Account Migration")."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.account.conftest import NOW, Client, Network, mailed_code, read_until
from tests.pds.conftest import PASSWORD
from tests.pds.test_repo_blobs import PNG, post_with_image

pytestmark = pytest.mark.integration
NEW_PASSWORD = "another horse battery staple"
IMAGES = 50


async def fill(alice: Client, friends: list[Client]) -> None:
    """Posts (50 with an image each), likes, follows both ways, an avatar, preferences."""
    avatar = await alice.upload(PNG + b"avatar")
    profile = {"$type": "app.bsky.actor.profile", "displayName": "Alice", "avatar": avatar}
    await alice.create(profile, rkey="self")
    posts = []
    for n in range(IMAGES):
        # Each image distinct and big enough that the copy takes a moment.
        image = await alice.upload(PNG + n.to_bytes(4, "big") + os.urandom(64 * 1024))
        posts.append(await alice.create({**post_with_image(image), "text": f"picture {n}"}))
    for n in range(10):
        await alice.create({"$type": "app.bsky.feed.post", "text": f"words {n}", "createdAt": NOW})
    for target in posts[:5]:
        subject = {"uri": target["uri"], "cid": target["cid"]}
        await alice.create({"$type": "app.bsky.feed.like", "subject": subject, "createdAt": NOW})
    for friend in friends:
        await alice.create(
            {"$type": "app.bsky.graph.follow", "subject": friend.did, "createdAt": NOW}
        )
        await friend.create(
            {"$type": "app.bsky.graph.follow", "subject": alice.did, "createdAt": NOW}
        )
    prefs = [{"$type": "app.bsky.actor.defs#adultContentPref", "enabled": True}]
    await alice.call("app.bsky.actor.putPreferences", {"preferences": prefs})


def migrate_command(did: str, new_url: str, plc: str, state: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "skyloft",
        "account",
        "migrate",
        "--from",
        did,
        "--to",
        new_url,
        "--plc",
        plc,
        "--state",
        str(state),
        *extra,
    ]


MIGRATE_ENV = {**os.environ, "SKYLOFT_OLD_PASSWORD": PASSWORD, "SKYLOFT_NEW_PASSWORD": NEW_PASSWORD}


async def test_migrate_killed_during_blob_copy_then_resumed(
    tmp_path: Path,
    plc_url: str,
    servers: Network,
    clients: tuple[Client, Client],
) -> None:
    new_url = servers.new
    old, new = clients
    alice = await old.signup("alice.test")
    friends = [await old.signup("bob.test"), await new.signup("carol.test")]
    await fill(alice, friends)
    records_before = (await alice.call("com.atproto.server.checkAccountStatus"))["indexedRecords"]
    assert records_before == 1 + IMAGES + 10 + 5 + 2
    state = tmp_path / "migration.json"
    command = migrate_command(alice.did, new_url, plc_url, state, "--relay", servers.relay)
    old_log = tmp_path / "pds-old.log"

    # First run: killed as soon as the blob copy has started.
    seen: list[str] = []
    with subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=MIGRATE_ENV
    ) as first:
        try:
            progress = read_until(first, r"^blobs \[.*\] (\d+)/(\d+)", seen)
        finally:
            os.kill(first.pid, signal.SIGKILL)
    assert int(progress.group(2)) == IMAGES + 1
    saved = json.loads(state.read_text())
    assert saved["done"] == ["account", "repo"]
    moving = Client(new.http, alice.did)
    moving.token = (
        await new.call(
            "com.atproto.server.createSession", {"identifier": alice.did, "password": NEW_PASSWORD}
        )
    )["accessJwt"]
    missing = (await moving.call("com.atproto.repo.listMissingBlobs", limit=1000))["blobs"]
    assert 0 < len(missing) < IMAGES + 1, "the kill did not land in the middle of the copy"
    session = await moving.call("com.atproto.server.getSession")
    assert session["active"] is False
    assert (await alice.call("com.atproto.server.getSession"))["active"] is True

    dry = subprocess.run(
        [*command, "--dry-run"], capture_output=True, text=True, env=MIGRATE_ENV, timeout=60
    )
    assert dry.returncode == 0, dry.stderr
    assert "done  repo" in dry.stderr and "todo  blobs" in dry.stderr
    assert json.loads(state.read_text()) == saved

    # Second run: continues with the blobs, then waits for the code on standard input.
    mail_start = len(old_log.read_text())
    seen = []
    with subprocess.Popen(
        command, stdin=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=MIGRATE_ENV
    ) as second:
        assert second.stdin is not None and second.stderr is not None
        read_until(second, r"mailed a code", seen)
        assert any(line.startswith("done: blobs") for line in seen)
        second.stdin.write(mailed_code(old_log, mail_start) + "\n")
        second.stdin.close()
        rest = second.stderr.read()
        exit_status = second.wait(60)
    assert exit_status == 0, "".join(seen) + rest
    for check in ("DID document names", "records", "blobs", "deactivated on the old", "relay"):
        assert re.search(rf"^ok: .*{check}", rest, re.M), rest
    assert "FAILED" not in rest

    # Everything is where it should be.
    doc = httpx.get(f"{plc_url}/{alice.did}").json()
    assert doc["service"][0]["serviceEndpoint"] == new_url.replace("127.0.0.1", "localhost")
    status = await moving.call("com.atproto.server.checkAccountStatus")
    assert status["activated"] and status["validDid"]
    assert status["indexedRecords"] == records_before
    assert status["expectedBlobs"] == status["importedBlobs"] == IMAGES + 1
    assert (await alice.call("com.atproto.server.checkAccountStatus"))["activated"] is False
    profile = await moving.call(
        "com.atproto.repo.getRecord",
        repo=alice.did,
        collection="app.bsky.actor.profile",
        rkey="self",
    )
    avatar = profile["value"]["avatar"]["ref"]["$link"]
    served = await new.http.get(
        "/xrpc/com.atproto.sync.getBlob", params={"did": alice.did, "cid": avatar}
    )
    assert served.content == PNG + b"avatar"
    prefs = await moving.call("app.bsky.actor.getPreferences")
    assert prefs["preferences"][0]["$type"] == "app.bsky.actor.defs#adultContentPref"
    # Followers on both servers still follow the same DID, which now resolves to the new PDS.
    for friend in friends:
        follows = await friend.call(
            "com.atproto.repo.listRecords", repo=friend.did, collection="app.bsky.graph.follow"
        )
        assert [f["value"]["subject"] for f in follows["records"]] == [alice.did]
    described = await new.call("com.atproto.repo.describeRepo", repo=alice.did)
    assert described["handle"] == "alice.test" and described["handleIsCorrect"]
    # The moved account writes on its new home.
    await moving.create({"$type": "app.bsky.feed.post", "text": "moved", "createdAt": NOW})

    # A third run has nothing left to do.
    again = subprocess.run(
        command,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=MIGRATE_ENV,
        timeout=60,
    )
    assert again.returncode == 0, again.stderr
    assert "done:" not in again.stderr


def run(command: list[str], *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*command, *extra],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=MIGRATE_ENV,
        timeout=120,
    )


async def test_migrate_pauses_for_the_plc_code_and_survives_a_wrong_one(
    tmp_path: Path,
    plc_url: str,
    servers: Network,
    clients: tuple[Client, Client],
) -> None:
    old, _ = clients
    dave = await old.signup("dave.test")
    await dave.create({"$type": "app.bsky.feed.post", "text": "hello", "createdAt": NOW})
    state = tmp_path / "dave.json"
    command = migrate_command(dave.did, servers.new, plc_url, state)
    old_log = tmp_path / "pds-old.log"

    # No code on standard input: everything but the identity is done, and the run pauses.
    mail_start = len(old_log.read_text())
    paused = run(command)
    assert paused.returncode == 3, paused.stderr
    assert "--plc-token" in paused.stderr
    saved = json.loads(state.read_text())
    assert saved["done"] == ["account", "repo", "blobs", "preferences"]
    assert saved["plc_operation"] is None
    code = mailed_code(old_log, mail_start)

    # A wrong code is refused by the old PDS; nothing changes and no new mail is asked for.
    wrong = run(command, "--plc-token", "AAAAA-BBBBB")
    assert wrong.returncode == 1 and "InvalidToken" in wrong.stderr, wrong.stderr
    assert json.loads(state.read_text()) == saved
    assert len(re.findall("Your code", old_log.read_text()[mail_start:])) == 1
    assert (await dave.call("com.atproto.server.getSession"))["active"] is True

    done = run(command, "--plc-token", code)
    assert done.returncode == 0, done.stderr
    assert "migration complete" in done.stderr
    assert json.loads(state.read_text())["done"][-1] == "verify"
    assert (await dave.call("com.atproto.server.getSession"))["active"] is False

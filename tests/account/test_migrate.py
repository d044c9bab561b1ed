"""`skyloft account migrate` between two real PDS processes, the PLC directory and a relay: an
account with posts, likes, follows, an avatar and 50 image blobs, the command killed in the
middle of the blob copy and resumed; a pause for the PLC code and a wrong code; the old PDS
dying during the copy (spec-account.md, "PDS Account Migration")."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from skyloft.services import ServiceProcess
from tests.account.conftest import NOW, Client, Network, mailed_code, read_until
from tests.account.scenario import (
    MIGRATE_ENV,
    NEW_PASSWORD,
    LogCodes,
    check_moved,
    fill,
    kill_during_blobs,
    migrate_command,
    resume,
)
from tests.pds.conftest import pds_env
from tests.servers import running_service

pytestmark = pytest.mark.integration


async def test_migrate_killed_during_blob_copy_then_resumed(
    tmp_path: Path,
    plc_url: str,
    servers: Network,
    clients: tuple[Client, Client],
) -> None:
    old, new = clients
    alice = await old.signup("alice.test")
    friends = [await old.signup("bob.test"), await new.signup("carol.test")]
    records = await fill(alice, friends)
    assert (await alice.call("com.atproto.server.checkAccountStatus"))["indexedRecords"] == records
    state = tmp_path / "migration.json"
    command = migrate_command(alice.did, servers.new, plc_url, state, "--relay", servers.relay)

    moving = await kill_during_blobs(command, state, new, alice.did)
    saved = json.loads(state.read_text())
    assert (await alice.call("com.atproto.server.getSession"))["active"] is True
    dry = subprocess.run(
        [*command, "--dry-run"], capture_output=True, text=True, env=MIGRATE_ENV, timeout=60
    )
    assert dry.returncode == 0, dry.stderr
    assert "done  repo" in dry.stderr and "todo  blobs" in dry.stderr
    assert json.loads(state.read_text()) == saved

    checked = resume(command, LogCodes(tmp_path / "pds-old.log"))
    assert re.search(r"^ok: relay", checked, re.M), checked
    await check_moved(plc_url, alice, moving, friends, records)
    described = await new.call("com.atproto.repo.describeRepo", repo=alice.did)
    assert described["handle"] == "alice.test" and described["handleIsCorrect"]

    # A third run has nothing left to do.
    again = run(command)
    assert again.returncode == 0, again.stderr
    assert "done:" not in again.stderr

    # The relay follows the new host: it has the write made there. The old host cannot come
    # back: it refuses to reactivate an account whose DID names another PDS.
    relay = Client(httpx.AsyncClient(base_url=servers.relay))
    async with relay.http:
        new_rev = (await moving.call("com.atproto.sync.getLatestCommit", did=alice.did))["rev"]
        assert await relay_rev(relay, alice.did, new_rev) == new_rev
    refused = await old.http.post(
        "/xrpc/com.atproto.server.activateAccount",
        headers={"authorization": f"Bearer {alice.token}"},
    )
    assert refused.status_code == 400 and "does not name this PDS" in refused.text


async def relay_rev(relay: Client, did: str, wanted: str) -> str:
    """The relay's latest rev for `did` once it is `wanted`, or after 30 seconds."""
    deadline = time.monotonic() + 30
    while True:
        seen: str = (await relay.call("com.atproto.sync.getLatestCommit", did=did))["rev"]
        if seen == wanted or time.monotonic() > deadline:
            return seen
        await asyncio.sleep(0.2)


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

    # A dry run before anything: every step to do, no state written, nothing created.
    dry = run(command, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "todo  account" in dry.stderr and "todo  verify" in dry.stderr
    assert not state.exists()

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


async def test_migrate_rides_out_a_restart_of_the_old_pds(tmp_path: Path, plc_url: str) -> None:
    """The old PDS dies in the middle of the blob copy and comes back on the same port: the
    migration's retries carry it through in the same run."""
    env = pds_env(plc_url)
    old_pds = ServiceProcess("pds", tmp_path / "old", env=env)
    port = int(old_pds.url.rsplit(":", 1)[1])
    try:
        with running_service("pds", tmp_path / "new", env=env) as new_url:
            async with (
                httpx.AsyncClient(base_url=old_pds.url) as old_http,
                httpx.AsyncClient(base_url=new_url) as new_http,
            ):
                hana = await Client(old_http).signup("hana.test")
                records = await fill(hana, [])
                state = tmp_path / "hana.json"
                command = migrate_command(hana.did, new_url, plc_url, state)
                codes = LogCodes(tmp_path / "pds-old.log")
                codes.mark()
                seen: list[str] = []
                with subprocess.Popen(
                    command,
                    stdin=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                    env=MIGRATE_ENV,
                ) as proc:
                    assert proc.stdin is not None and proc.stderr is not None
                    read_until(proc, r"^blobs \[", seen)
                    old_pds.kill()
                    old_pds.stop()  # closes its pipe; it is dead already
                    old_pds = ServiceProcess("pds", tmp_path / "old", port=port, env=env)
                    read_until(proc, r"mailed a code", seen)
                    proc.stdin.write(codes.code() + "\n")
                    proc.stdin.close()
                    rest = proc.stderr.read()
                    assert proc.wait(60) == 0, "".join(seen) + rest
                retried = [line for line in seen if "retrying" in line]
                assert retried and all(f":{port}: " in line for line in retried), seen
                login = {"identifier": hana.did, "password": NEW_PASSWORD}
                session = await Client(new_http).call("com.atproto.server.createSession", login)
                moving = Client(new_http, hana.did, session["accessJwt"])
                await check_moved(plc_url, hana, moving, [], records)
    finally:
        old_pds.stop()

"""`skyloft account recover`: the old PDS is killed; the account comes back on another PDS from
its backup and the person's rotation key, with no help from the old server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from atcore.identity.plc_client import PlcClient
from atcore.keys import private_key_from_hex
from skyloft.services import ServiceProcess
from tests.account.conftest import NOW, Client
from tests.account.scenario import AVATAR, NEW_PASSWORD, png
from tests.account.test_backup import ENV, add_rotation_key
from tests.pds.conftest import pds_env
from tests.pds.test_repo_blobs import post_with_image
from tests.servers import running_service

pytestmark = pytest.mark.integration


async def test_recover_without_the_old_pds(tmp_path: Path, plc_url: str) -> None:
    old_pds = ServiceProcess("pds", tmp_path / "old", env=pds_env(plc_url))
    try:
        with running_service("pds", tmp_path / "new", env=pds_env(plc_url)) as new_url:
            async with (
                httpx.AsyncClient(base_url=old_pds.url) as old_http,
                httpx.AsyncClient(base_url=new_url) as new_http,
            ):
                await recover_scenario(
                    tmp_path, plc_url, old_pds, Client(old_http), Client(new_http)
                )
    finally:
        old_pds.stop()


async def recover_scenario(
    tmp_path: Path, plc_url: str, old_pds: ServiceProcess, old: Client, new: Client
) -> None:
    gus = await old.signup("gus.test")
    bob = await new.signup("bob.test")
    await bob.create({"$type": "app.bsky.graph.follow", "subject": gus.did, "createdAt": NOW})
    avatar = await gus.upload(AVATAR)
    profile = {"$type": "app.bsky.actor.profile", "displayName": "Gus", "avatar": avatar}
    await gus.create(profile, rkey="self")
    for n in range(3):
        image = await gus.upload(png(20, 20))
        await gus.create({**post_with_image(image), "text": f"picture {n}"})
    # Bytes no PDS recognises as an image: only the type kept in the backup says what they are.
    unsniffable = await gus.upload(b"declared image/png, without the PNG signature")
    await gus.create({**post_with_image(unsniffable), "text": "odd picture"})
    prefs = [{"$type": "app.bsky.actor.defs#adultContentPref", "enabled": True}]
    await gus.call("app.bsky.actor.putPreferences", {"preferences": prefs})
    records = (await gus.call("com.atproto.server.checkAccountStatus"))["indexedRecords"]
    key_file = tmp_path / "gus.key"
    add_rotation_key(plc_url, gus.did, key_file, tmp_path / "pds-old.log")
    backup = tmp_path / "backup"
    command = [sys.executable, "-m", "skyloft", "account"]
    made = subprocess.run(
        [*command, "backup", "--account", gus.did, "--out", str(backup), "--plc", plc_url],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    plc = PlcClient(plc_url, new.http)
    old_rotation = (await plc.get_document_data(gus.did))["rotationKeys"][1]

    old_pds.kill()  # the old server is gone for good
    recover = [*command, "recover", "--backup", str(backup), "--rotation-key", str(key_file)]
    recover += ["--to", str(new.http.base_url), "--plc", plc_url, "--email", "gus@example.com"]
    env = {**os.environ, "SKYLOFT_NEW_PASSWORD": NEW_PASSWORD}
    for attempt in range(2):  # the second run finds everything done
        done = subprocess.run(recover, capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 0, (attempt, done.stderr)

    data = await plc.get_document_data(gus.did)
    mine = private_key_from_hex("k256", key_file.read_text().strip()).public_key().did_key()
    assert data["rotationKeys"][0] == mine and old_rotation not in data["rotationKeys"]
    endpoint = str(new.http.base_url.copy_with(host="localhost")).rstrip("/")
    assert data["services"]["atproto_pds"]["endpoint"] == endpoint
    login = {"identifier": gus.did, "password": NEW_PASSWORD}
    session = await new.call("com.atproto.server.createSession", login)
    moved = Client(new.http, gus.did, session["accessJwt"])
    status = await moved.call("com.atproto.server.checkAccountStatus")
    assert status["activated"] and status["validDid"]
    assert status["indexedRecords"] == records
    assert status["expectedBlobs"] == status["importedBlobs"] == 5
    assert (await moved.call("app.bsky.actor.getPreferences"))["preferences"] == prefs
    served = await new.http.get(
        "/xrpc/com.atproto.sync.getBlob",
        params={"did": gus.did, "cid": avatar["ref"]["$link"]},
    )
    assert served.content == AVATAR
    odd = await new.http.get(
        "/xrpc/com.atproto.sync.getBlob",
        params={"did": gus.did, "cid": unsniffable["ref"]["$link"]},
    )
    assert odd.headers["content-type"] == unsniffable["mimeType"] == "image/png"
    await moved.create({"$type": "app.bsky.feed.post", "text": "back", "createdAt": NOW})
    follows = await bob.call(
        "com.atproto.repo.listRecords", repo=bob.did, collection="app.bsky.graph.follow"
    )
    assert [f["value"]["subject"] for f in follows["records"]] == [gus.did]
    assert json.loads((backup / "backup.json").read_text())["did"] == gus.did

"""`skyloft account backup` (incremental, via getRepo `since`) and `verify-backup`, against a
real PDS process; `skyloft account rotation-key add` through the PDS's PLC signing flow, then
the key used on its own to sign an operation the PLC directory accepts."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from atcore.car import read_car
from atcore.identity.plc import op_cid, sign_operation, update_op
from atcore.identity.plc_client import PlcClient
from atcore.keys import generate_k256, private_key_from_hex
from tests.account.conftest import NOW, Client, Network, mailed_code, read_until
from tests.pds.conftest import PASSWORD
from tests.pds.test_repo_blobs import PNG, post_with_image

pytestmark = pytest.mark.integration
ENV = {**os.environ, "SKYLOFT_PASSWORD": PASSWORD}


def account(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "skyloft", "account", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=ENV,
        timeout=120,
    )


async def post_image(client: Client, data: bytes) -> None:
    image = await client.upload(PNG + data)
    await client.create({**post_with_image(image), "text": "pic"})


async def test_incremental_backup_and_its_check(
    tmp_path: Path, plc_url: str, clients: tuple[Client, Client]
) -> None:
    old, _ = clients
    erin = await old.signup("erin.test")
    for n in range(3):
        await erin.create({"$type": "app.bsky.feed.post", "text": f"post {n}", "createdAt": NOW})
    await post_image(erin, b"one")
    await post_image(erin, b"two")
    out = tmp_path / "backup"
    first = account("backup", "--account", erin.did, "--out", str(out), "--plc", plc_url)
    assert first.returncode == 0, first.stderr
    assert "2 new blobs" in first.stdout
    manifest = json.loads((out / "backup.json").read_text())
    assert len(manifest["segments"]) == 1 and manifest["did"] == erin.did
    assert list(manifest["blob_types"].values()) == ["image/png", "image/png"]
    assert json.loads((out / "preferences.json").read_text()) == {"preferences": []}

    await erin.create({"$type": "app.bsky.feed.post", "text": "later", "createdAt": NOW})
    await post_image(erin, b"three")
    second = account("backup", "--out", str(out), "--plc", plc_url)
    assert second.returncode == 0, second.stderr
    assert "1 new blobs" in second.stdout
    manifest = json.loads((out / "backup.json").read_text())
    assert len(manifest["segments"]) == 2
    cars = [read_car((out / name).read_bytes()) for name in manifest["segments"]]
    assert not set(cars[0].blocks) & set(cars[1].blocks), "the second holds only what changed"
    unchanged = account("backup", "--out", str(out), "--plc", plc_url, "--no-preferences")
    assert "0 new repository bytes, 0 new blobs" in unchanged.stdout, unchanged.stderr

    checked = account("verify-backup", str(out))
    assert checked.returncode == 0, checked.stderr
    status = await erin.call("com.atproto.server.checkAccountStatus")
    records = status["indexedRecords"]
    assert records == 7
    assert f"valid: {erin.did} rev {manifest['rev']}, {records} records, 3 blobs" in checked.stdout

    blobs = sorted((out / "blobs").iterdir())
    original = blobs[0].read_bytes()
    blobs[0].write_bytes(original + b"!")
    bad = account("verify-backup", str(out))
    assert bad.returncode == 1 and "do not match its CID" in bad.stderr
    blobs[0].unlink()
    gone = account("verify-backup", str(out))
    assert gone.returncode == 1 and "not backed up" in gone.stderr
    blobs[0].write_bytes(original)
    # A backup made before blob types were kept fails the check until the next backup run.
    untyped = {**manifest, "blob_types": {}}
    (out / "backup.json").write_text(json.dumps(untyped))
    no_type = account("verify-backup", str(out))
    assert no_type.returncode == 1 and "no MIME type recorded" in no_type.stderr
    healed = account("backup", "--out", str(out), "--plc", plc_url, "--no-preferences")
    assert "0 new repository bytes, 3 new blobs" in healed.stdout, healed.stderr
    assert account("verify-backup", str(out)).returncode == 0
    (out / manifest["segments"][0]).write_bytes(b"\x00" * 40)
    broken = account("verify-backup", str(out))
    assert broken.returncode == 1 and broken.stderr.splitlines()[-1].startswith("error: ")


def add_rotation_key(plc_url: str, did: str, key_file: Path, log: Path) -> str:
    """`skyloft account rotation-key add`, the mailed code on stdin; what it printed."""
    mail_start = len(log.read_text())
    command = [sys.executable, "-m", "skyloft", "account", "rotation-key", "add"]
    command += ["--account", did, "--out", str(key_file), "--plc", plc_url]
    seen: list[str] = []
    with subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    ) as proc:
        assert proc.stdin is not None and proc.stdout is not None
        read_until(proc, "mailed a code", seen)
        proc.stdin.write(mailed_code(log, mail_start) + "\n")
        proc.stdin.close()
        printed = proc.stdout.read()
        assert proc.wait(60) == 0, "".join(seen)
    return printed


async def test_rotation_key_above_the_pds_key(
    tmp_path: Path, plc_url: str, servers: Network, clients: tuple[Client, Client]
) -> None:
    old, _ = clients
    fay = await old.signup("fay.test")
    plc = PlcClient(plc_url, old.http)
    before = (await plc.get_document_data(fay.did))["rotationKeys"]
    key_file = tmp_path / "fay.key"
    printed = add_rotation_key(plc_url, fay.did, key_file, tmp_path / "pds-old.log")
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = private_key_from_hex("k256", key_file.read_text().strip())
    mine = key.public_key().did_key()
    assert key.hex() in printed and mine in printed
    after = (await plc.get_document_data(fay.did))["rotationKeys"]
    assert after == [mine, *before]

    # The PDS signs away the person's key (as a server acting against their will would) ...
    log = tmp_path / "pds-old.log"
    mail_start = len(log.read_text())
    await fay.post("com.atproto.identity.requestPlcOperationSignature")
    body = {"token": mailed_code(log, mail_start), "rotationKeys": before}
    signed = await fay.call("com.atproto.identity.signPlcOperation", body)
    await fay.call("com.atproto.identity.submitPlcOperation", {"operation": signed["operation"]})
    assert (await plc.get_document_data(fay.did))["rotationKeys"] == before
    # ... and the person's key undoes it within the recovery window.
    undo = ["rotation-key", "undo", "--account", fay.did, "--rotation-key", str(key_file)]
    undone = account(*undo, "--plc", plc_url)
    assert undone.returncode == 0, undone.stderr
    assert (await plc.get_document_data(fay.did))["rotationKeys"] == [mine, *before]
    audit = await plc.get_audit_log(fay.did)
    assert [e["nullified"] for e in audit] == [False, False, True, False]
    assert undone.stdout == f"undone: {audit[2]['cid']}\n"
    # A key below the PDS's cannot undo what the PDS signed.
    weak = tmp_path / "weak.key"
    weak.write_text(generate_k256().hex())
    refused = account(*undo[:-1], str(weak), "--plc", plc_url)
    assert refused.returncode == 1 and "error:" in refused.stderr

    # The key alone signs an operation the directory accepts: no PDS involved.
    last = await plc.get_last_op(fay.did)
    op = sign_operation(update_op(last, op_cid(last), handle="fay2.test"), key)
    await plc.submit(fay.did, op)
    doc = httpx.get(f"{plc_url}/{fay.did}").json()
    assert doc["alsoKnownAs"] == ["at://fay2.test"]

    again = account(
        "rotation-key", "add", "--account", fay.did, "--out", str(key_file), "--plc", plc_url
    )
    assert again.returncode == 1 and "exists already" in again.stderr

"""The migration scenario shared by the tests against our PDS and against the reference one:
fill an account, run `skyloft account migrate`, kill it during the blob copy, resume it with
the mailed PLC code, and check that everything moved."""

from __future__ import annotations

import json
import os
import re
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Protocol

import httpx

from tests.account.conftest import NOW, Client, mailed_code, read_until
from tests.pds.conftest import PASSWORD
from tests.pds.smtp_server import Inbox
from tests.pds.test_repo_blobs import post_with_image

NEW_PASSWORD = "another horse battery staple"
IMAGES = 50
RECORDS = 1 + IMAGES + 10 + 5
MIGRATE_ENV = {**os.environ, "SKYLOFT_OLD_PASSWORD": PASSWORD, "SKYLOFT_NEW_PASSWORD": NEW_PASSWORD}
# The codes both PDSes mail: two groups of five base32 characters.
CODE = re.compile(r"\b[A-Z2-7]{5}-[A-Z2-7]{5}\b")


def png(width: int, height: int) -> bytes:
    """A valid PNG of random pixels (the reference PDS refuses corrupt images)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    rows = b"".join(b"\x00" + os.urandom(width * 3) for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunks = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + chunks


AVATAR = png(32, 32)


async def fill(alice: Client, friends: list[Client]) -> int:
    """Posts (50 with an image each), likes, follows both ways, an avatar, preferences; the
    number of records written."""
    avatar = await alice.upload(AVATAR)
    profile = {"$type": "app.bsky.actor.profile", "displayName": "Alice", "avatar": avatar}
    await alice.create(profile, rkey="self")
    posts = []
    for n in range(IMAGES):
        # Each image distinct and big enough (about 70 kB) that the copy takes a moment.
        image = await alice.upload(png(150, 150))
        posts.append(await alice.create({**post_with_image(image), "text": f"picture {n}"}))
    for n in range(10):
        await alice.create({"$type": "app.bsky.feed.post", "text": f"words {n}", "createdAt": NOW})
    for target in posts[:5]:
        subject = {"uri": target["uri"], "cid": target["cid"]}
        await alice.create({"$type": "app.bsky.feed.like", "subject": subject, "createdAt": NOW})
    for friend in friends:
        follow = {"$type": "app.bsky.graph.follow", "subject": friend.did, "createdAt": NOW}
        await alice.create(follow)
        await friend.create({**follow, "subject": alice.did})
    prefs = [{"$type": "app.bsky.actor.defs#adultContentPref", "enabled": True}]
    await alice.call("app.bsky.actor.putPreferences", {"preferences": prefs})
    return RECORDS + len(friends)


def migrate_command(did: str, new_url: str, plc: str, state: Path, *extra: str) -> list[str]:
    command = [sys.executable, "-m", "skyloft", "account", "migrate", "--from", did]
    return [*command, "--to", new_url, "--plc", plc, "--state", str(state), *extra]


class Codes(Protocol):
    """Where the old PDS's mailed codes arrive."""

    def mark(self) -> None: ...
    def code(self) -> str: ...


class LogCodes:
    """Our PDS in development mode writes each mail to its log."""

    def __init__(self, log: Path) -> None:
        self.log, self.start = log, 0

    def mark(self) -> None:
        self.start = len(self.log.read_text())

    def code(self) -> str:
        return mailed_code(self.log, self.start)


class InboxCodes:
    """A PDS that mails through SMTP, to the tests' server."""

    def __init__(self, inbox: Inbox) -> None:
        self.inbox, self.start = inbox, 0

    def mark(self) -> None:
        self.start = len(self.inbox.messages)

    def code(self) -> str:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            for message in self.inbox.messages[self.start :]:
                for part in message.walk():
                    body = part.get_payload(decode=True)
                    found = CODE.search(body.decode()) if isinstance(body, bytes) else None
                    if found:
                        return found.group(0)
            time.sleep(0.1)
        raise AssertionError("no code was mailed")


async def kill_during_blobs(command: list[str], state: Path, new: Client, did: str) -> Client:
    """Run the migration, SIGKILL it once the blob copy has started, check that it stopped
    half-way with the old account still active; the session on the new account."""
    seen: list[str] = []
    with subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=MIGRATE_ENV
    ) as first:
        try:
            progress = read_until(first, r"^blobs \[.*\] (\d+)/(\d+)", seen)
        finally:
            os.kill(first.pid, signal.SIGKILL)
    assert int(progress.group(2)) == IMAGES + 1
    assert json.loads(state.read_text())["done"] == ["account", "repo"]
    login = {"identifier": did, "password": NEW_PASSWORD}
    made = await new.call("com.atproto.server.createSession", login)
    moving = Client(new.http, did, made["accessJwt"])
    missing = (await moving.call("com.atproto.repo.listMissingBlobs", limit=1000))["blobs"]
    assert 0 < len(missing) < IMAGES + 1, "the kill did not land in the middle of the copy"
    assert (await moving.call("com.atproto.server.getSession"))["active"] is False
    return moving


def resume(command: list[str], codes: Codes) -> str:
    """Run the migration again, giving the mailed code on standard input; its stderr."""
    codes.mark()
    seen: list[str] = []
    with subprocess.Popen(
        command, stdin=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=MIGRATE_ENV
    ) as second:
        assert second.stdin is not None and second.stderr is not None
        read_until(second, r"mailed a code", seen)
        assert any(line.startswith("done: blobs") for line in seen)
        second.stdin.write(codes.code() + "\n")
        second.stdin.close()
        rest = second.stderr.read()
        exit_status = second.wait(60)
    assert exit_status == 0, "".join(seen) + rest
    for check in ("DID document names", "records", "blobs", "deactivated on the old"):
        assert re.search(rf"^ok: .*{check}", rest, re.M), rest
    assert "FAILED" not in rest
    return rest


async def check_moved(
    plc_url: str, alice: Client, moving: Client, friends: list[Client], records: int
) -> None:
    """The DID names the new PDS, which holds every record, blob and preference, and takes
    writes; the old account is deactivated; followers still follow the DID."""
    doc = httpx.get(f"{plc_url}/{alice.did}").json()
    endpoint = moving.http.base_url.copy_with(host="localhost")
    assert doc["service"][0]["serviceEndpoint"] == str(endpoint).rstrip("/")
    status = await moving.call("com.atproto.server.checkAccountStatus")
    assert status["activated"] and status["validDid"]
    assert status["indexedRecords"] == records
    assert status["expectedBlobs"] == status["importedBlobs"] == IMAGES + 1
    assert (await alice.call("com.atproto.server.checkAccountStatus"))["activated"] is False
    profile = await moving.call(
        "com.atproto.repo.getRecord",
        repo=alice.did,
        collection="app.bsky.actor.profile",
        rkey="self",
    )
    avatar = profile["value"]["avatar"]["ref"]["$link"]
    served = await moving.http.get(
        "/xrpc/com.atproto.sync.getBlob", params={"did": alice.did, "cid": avatar}
    )
    assert served.content == AVATAR
    prefs = await moving.call("app.bsky.actor.getPreferences")
    assert prefs["preferences"][0]["$type"] == "app.bsky.actor.defs#adultContentPref"
    for friend in friends:
        follows = await friend.call(
            "com.atproto.repo.listRecords", repo=friend.did, collection="app.bsky.graph.follow"
        )
        assert [f["value"]["subject"] for f in follows["records"]] == [alice.did]
    await moving.create({"$type": "app.bsky.feed.post", "text": "moved", "createdAt": NOW})

"""`skyloft devnet`: PLC + PDS come up, the printed demo credentials work with the atproto SDK,
a restart on the same data keeps the account, and SIGTERM stops every child process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from atproto import Client
from atproto_client.request import Request  # type: ignore[import-untyped]

pytestmark = pytest.mark.integration


def start(data: Path) -> tuple[subprocess.Popen[str], dict[str, str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "skyloft", "devnet", "--data-dir", str(data)]
        + ["--plc-port", "0", "--pds-port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    lines: dict[str, str] = {}
    for line in proc.stdout:
        if line.startswith("ready"):
            return proc, lines
        name, _, value = line.partition(" ")
        lines[name] = value.strip()
    proc.wait(10)
    error = proc.stderr.read() if proc.stderr else ""
    raise AssertionError(f"devnet did not start: {error}")


def children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in found.split()]


def stop(proc: subprocess.Popen[str]) -> None:
    kids = children(proc.pid)
    assert len(kids) == 2
    os.kill(proc.pid, signal.SIGTERM)
    assert proc.wait(20) == 0
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()
    time.sleep(0.2)
    for kid in kids:
        with pytest.raises(ProcessLookupError):
            os.kill(kid, 0)


def test_devnet_demo_account(tmp_path: Path) -> None:
    proc, lines = start(tmp_path)
    try:
        handle, did = lines["account"].split()
        pds_url = lines["pds"].split()[0]
        request = Request()
        client = Client(base_url=pds_url, request=request)
        # No appview in the devnet yet, so the SDK must not look up the Bluesky profile.
        client.login(handle, lines["password"], fetch_bsky_profile=False)
        session = client.com.atproto.server.get_session()
        assert (session.did, session.handle) == (did, handle)
        post = client.com.atproto.repo.create_record(
            {
                "repo": did,
                "collection": "app.bsky.feed.post",
                "record": {"text": "hi", "createdAt": "2026-11-29T00:00:00Z"},
            }
        )
        assert post.uri.startswith(f"at://{did}/app.bsky.feed.post/")
        request.close()
    finally:
        stop(proc)
    again, lines_again = start(tmp_path)
    try:
        assert lines_again["account"] == lines["account"]
        assert lines_again["password"] == lines["password"]
    finally:
        stop(again)

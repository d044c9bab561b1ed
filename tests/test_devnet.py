"""`skyloft devnet`: PLC, two PDSes, a relay, an appview, the stream and the example feed come
up; the printed demo credentials work with the atproto SDK's plain login (profile from the
appview, handle verified); a tagged post reaches the example feed through the stream, and the
SDK's get_feed returns it hydrated by the appview;
the relay crawls both PDSes; a restart on the same data keeps the accounts; and SIGTERM stops
every child process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from atproto import Client
from atproto_client.request import Request  # type: ignore[import-untyped]

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def start(data: Path) -> tuple[subprocess.Popen[str], dict[str, str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "skyloft", "devnet", "--data-dir", str(data)]
        + ["--plc-port", "0", "--pds-ports", "0", "0", "--relay-port", "0"]
        + ["--appview-port", "0", "--jetstream-port", "0", "--feedgen-port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    lines: dict[str, str] = {}
    last = ""
    for line in proc.stdout:
        if line.startswith("ready"):
            return proc, lines
        name, _, value = line.strip().partition(" ")
        if name == "account":  # belongs to the PDS line printed just before it
            name = f"{last}-account"
        lines[name] = value.strip()
        last = name
    proc.wait(10)
    error = proc.stderr.read() if proc.stderr else ""
    raise AssertionError(f"devnet did not start: {error}")


def children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in found.split()]


def stop(proc: subprocess.Popen[str]) -> None:
    kids = children(proc.pid)
    os.kill(proc.pid, signal.SIGTERM)
    assert proc.wait(20) == 0
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()
    time.sleep(0.2)
    for kid in kids:
        with pytest.raises(ProcessLookupError):
            os.kill(kid, 0)
    # Counted after the stop, so a wrong count never leaves the children running.
    assert len(kids) == 7  # plc, relay, appview, two PDSes, jetstream, the example feed


def tagged_post_reaches_the_example_feed(lines: dict[str, str]) -> bool:
    """A #skyloft post by bob goes PDS → relay → stream → the example feed, published by alice."""
    feed_uri, _, served = lines["feed"].partition("(served by ")
    feed_uri, feedgen = feed_uri.strip(), served.split(",")[0]
    handle, did, _, password = lines["pds2-account"].split()
    client = Client(base_url=lines["pds2"])
    client.login(handle, password)
    post = client.send_post("devnet says hello #skyloft")
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            skeleton = httpx.get(
                f"{feedgen}/xrpc/app.bsky.feed.getFeedSkeleton", params={"feed": feed_uri}
            )
            assert skeleton.status_code == 200, skeleton.text
            if [item["post"] for item in skeleton.json()["feed"]] == [post.uri]:
                # The same feed, hydrated by the appview, through the PDS (getFeed's own token).
                hydrated = client.app.bsky.feed.get_feed({"feed": feed_uri}).feed
                return [item.post.uri for item in hydrated] == [post.uri]
            time.sleep(0.2)
        return False
    finally:
        client.request.close()


def test_devnet_network(tmp_path: Path) -> None:
    proc, lines = start(tmp_path)
    try:
        request = Request()
        dids = []
        for name in ("pds1", "pds2"):
            handle, did, _, password = lines[f"{name}-account"].split()
            client = Client(base_url=lines[name], request=request)
            # The plain login fetches the profile from the appview, through the PDS.
            profile = client.login(handle, password)
            assert (profile.did, profile.handle) == (did, handle)
            session = client.com.atproto.server.get_session()
            assert (session.did, session.handle) == (did, handle)
            post = client.com.atproto.repo.create_record(
                {
                    "repo": did,
                    "collection": "app.bsky.feed.post",
                    "record": {"text": f"hi from {name}", "createdAt": "2026-11-29T00:00:00Z"},
                }
            )
            assert post.uri.startswith(f"at://{did}/app.bsky.feed.post/")
            dids.append(did)
        request.close()
        relay = lines["relay"].split()[0]
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            hosts = httpx.get(f"{relay}/xrpc/com.atproto.sync.listHosts").json()["hosts"]
            repos = httpx.get(f"{relay}/xrpc/com.atproto.sync.listRepos").json()["repos"]
            if len(hosts) == 2 and sorted(r["did"] for r in repos) == sorted(dids):
                break
            time.sleep(0.2)
        assert {h["status"] for h in hosts} == {"active"}
        assert sorted(r["did"] for r in repos) == sorted(dids)
        assert tagged_post_reaches_the_example_feed(lines)
    finally:
        stop(proc)
    again, lines_again = start(tmp_path)
    try:
        assert lines_again["pds1-account"] == lines["pds1-account"]
        assert lines_again["pds2-account"] == lines["pds2-account"]
    finally:
        stop(again)

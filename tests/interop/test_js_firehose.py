"""@atproto/sync's Firehose on a live PDS: every event we cause arrives, authenticated, none
rejected; @atproto/repo's MST agrees with every #commit's sync-1.1 inversion."""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

import httpx
import pytest

from tests.interop.conftest import JS, PASSWORD, node_binary, run_node
from tests.interop.history import POST, History, live_account, post

pytestmark = pytest.mark.integration


def as_history(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The Firehose's parsed events in History's shape, plus their seq: one entry per seq."""
    out: list[dict[str, Any]] = []
    for e in events:
        base = {"seq": e["seq"], "kind": e["event"], "did": e["did"]}
        if e["event"] in ("create", "update", "delete"):
            op = (e["event"], e["path"], e.get("cid"))
            if out and out[-1]["seq"] == e["seq"]:
                out[-1]["ops"].append(op)
            else:
                meta = {"commit": e["commit"], "rev": e["rev"]}
                out.append({**base, "kind": "commit", **meta, "ops": [op]})
        elif e["event"] == "identity":
            assert e["didDocumentId"] == e["did"]
            out.append({**base, "handle": e["handle"]})
        elif e["event"] == "account":
            out.append({**base, "active": e["active"], "status": e["status"]})
        else:
            assert e["event"] == "sync" and e["blocks"] == 1, e
            out.append({**base, "commit": e["cid"], "rev": e["rev"]})
    return out


def test_sync_firehose_authenticates_every_event(pds_url: str, plc_url: str) -> None:
    history: History = live_account(pds_url, "firehose.test", "renamed.test")
    # The Firehose reports a commit without ops (the genesis) as no event at all.
    expected = [e for e in history.events if e["kind"] != "commit" or e["ops"]]
    count = sum(len(e["ops"]) if e["kind"] == "commit" else 1 for e in expected)
    payload = {"service": pds_url, "plcUrl": plc_url, "cursor": 0, "timeoutMs": 10000}
    result = run_node("sync_firehose.mjs", {**payload, "events": count, "did": history.did})

    assert result["errors"] == [] and result["timedOut"] is False, result
    parsed = as_history(result["events"])
    seqs = [e.pop("seq") for e in parsed]
    assert seqs == sorted(set(seqs))
    # Handles are resolved when the event is parsed: by then the account has its new handle.
    renamed = [e | {"handle": history.handle} if e["kind"] == "identity" else e for e in expected]
    assert parsed == renamed
    for e in result["events"]:
        if e["event"] in ("create", "update"):
            assert e["record"] == history.values[e["cid"]]

    # The raw stream's commits, each inverted by @atproto/repo back to its prevData.
    commits = {c["seq"]: c for c in result["commits"]}
    with_ops = [c for c in commits.values() if c["ops"]]
    assert [c["inverted"] for c in with_ops] == [True] * 4, with_ops
    assert [c["inverted"] for c in commits.values() if not c["ops"]] == [None]


def test_sync_firehose_without_a_cursor_gets_live_events(pds_url: str, plc_url: str) -> None:
    """A runner with no saved cursor subscribes with `cursor=` (empty): that means live."""
    with httpx.Client(base_url=pds_url, timeout=30) as client:
        account = {"handle": "live.test", "email": "live@example.com", "password": PASSWORD}
        created = client.post("/xrpc/com.atproto.server.createAccount", json=account).json()
        auth = {"authorization": f"Bearer {created['accessJwt']}"}
        payload = {"service": pds_url, "plcUrl": plc_url, "cursor": None, "timeoutMs": 15000}
        payload |= {"events": 3, "did": created["did"]}
        proc = subprocess.Popen(
            [node_binary(), str(JS / "sync_firehose.mjs")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stdin is not None
            proc.stdin.write(json.dumps(payload))
            proc.stdin.close()
            proc.stdin = None
            # Write until the subscriber, connected at some point, has seen three creates.
            made: dict[str, str] = {}
            deadline = time.monotonic() + 15
            while proc.poll() is None and time.monotonic() < deadline:
                body = {"repo": created["did"], "collection": POST, "record": post("live")}
                r = client.post("/xrpc/com.atproto.repo.createRecord", json=body, headers=auth)
                made[r.json()["uri"].split("/", 3)[3]] = r.json()["cid"]
                time.sleep(0.1)
            out, err = proc.communicate(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0, err
    result = json.loads(out)
    assert result["errors"] == [] and result["timedOut"] is False, result
    assert [e["event"] for e in result["events"]] == ["create"] * 3
    assert all(made[e["path"]] == e["cid"] for e in result["events"])

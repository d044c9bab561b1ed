"""Jetstream on a real relay fed by a real PDS: an account's whole life (records written,
edited, batch-written and deleted, a handle change, deactivation and reactivation) arrives as
the v1 events it must cause, to our Python client and to npm @skyware/jetstream; a restart
resumes from the persisted upstream cursor with nothing lost or doubled."""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from skyloft.services import ServiceProcess
from tests.interop.conftest import JS, node_binary, run_node
from tests.interop.history import POST, History, live_account, post
from tests.jetstream.conftest import PASSWORD, Network, jetstream_env

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TIMEOUT = 30.0


def expected(history: History) -> list[tuple[Any, ...]]:
    """The v1 events the account's firehose events become: one per op; #sync and ops-less
    commits become none."""
    out: list[tuple[Any, ...]] = []
    for e in history.events:
        if e["kind"] == "commit":
            for action, path, cid in e["ops"]:
                collection, rkey = path.split("/")
                out.append(("commit", e["rev"], action, collection, rkey, cid))
        elif e["kind"] == "identity":
            out.append(("identity", e["handle"]))
        elif e["kind"] == "account":
            out.append(("account", e["active"], e["status"]))
    return out


def summary(event: dict[str, Any]) -> tuple[Any, ...]:
    if event["kind"] == "commit":
        c = event["commit"]
        return ("commit", c["rev"], c["operation"], c["collection"], c["rkey"], c.get("cid"))
    if event["kind"] == "identity":
        assert event["identity"]["did"] == event["did"]
        return ("identity", event["identity"].get("handle"))
    assert event["account"]["did"] == event["did"]
    return ("account", event["account"]["active"], event["account"].get("status"))


def read(url: str, count: int) -> list[dict[str, Any]]:
    events = []
    deadline = time.monotonic() + TIMEOUT
    with connect(url, open_timeout=10, compression=None, proxy=None) as ws:
        while len(events) < count:
            events.append(json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic()))))
    return events


def now_us() -> int:
    return time.time_ns() // 1000


@pytest.fixture(scope="module")
def life(network: Network) -> tuple[History, int]:
    """One account's life on the network's PDS, and a cursor from before it began."""
    cursor = now_us()
    return live_account(network.pds, "life.test", "life2.test"), cursor


def test_an_accounts_life_arrives_as_its_v1_events(
    network: Network, life: tuple[History, int]
) -> None:
    history, cursor = life
    want = expected(history)
    got = read(network.subscribe_url(f"wantedDids={history.did}&cursor={cursor}"), len(want))
    assert [summary(e) for e in got] == want
    assert all(e["did"] == history.did for e in got)
    for e in got:
        if e["kind"] == "commit" and "record" in e["commit"]:
            assert e["commit"]["record"] == history.values[e["commit"]["cid"]]
    keys = [e["time_us"] for e in got]
    assert keys == sorted(set(keys)) and keys[0] >= cursor


def test_skyware_jetstream_receives_the_same_events(
    network: Network, life: tuple[History, int]
) -> None:
    history, cursor = life
    want = expected(history)
    payload = {
        "endpoint": network.subscribe_url(),
        "wantedDids": [history.did],
        "cursor": cursor,
        "events": len(want),
        "timeoutMs": 20000,
    }
    result = run_node("skyware_jetstream.mjs", payload)
    assert result["errors"] == [] and result["timedOut"] is False, result
    assert [summary(e) for e in result["events"]] == want
    assert result["cursor"] == result["events"][-1]["time_us"]


def test_skyware_filters_by_collection_and_updates_its_options(
    network: Network, life: tuple[History, int]
) -> None:
    """Replay with a graph-only filter (the account's identity and account events only), then
    an options_update to posts: the post written after it arrives."""
    history, cursor = life
    others = [e for e in expected(history) if e[0] != "commit"]
    payload = {
        "endpoint": network.subscribe_url(),
        "wantedCollections": ["app.bsky.graph.*"],
        "wantedDids": [history.did],
        "cursor": cursor,
        "events": len(others) + 1,
        "timeoutMs": 20000,
        "update": {"after": len(others), "payload": {"wantedCollections": [POST]}},
    }
    proc = subprocess.Popen(
        [node_binary(), str(JS / "skyware_jetstream.mjs")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    made = []
    try:
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(payload))
        proc.stdin.close()
        proc.stdin = None
        with httpx.Client(base_url=network.pds, timeout=30) as client:
            login = {"identifier": history.did, "password": PASSWORD}
            session = client.post("/xrpc/com.atproto.server.createSession", json=login).json()
            auth = {"authorization": f"Bearer {session['accessJwt']}"}
            deadline = time.monotonic() + 20
            while proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.3)
                body = {"repo": history.did, "collection": POST, "record": post("after")}
                r = client.post("/xrpc/com.atproto.repo.createRecord", json=body, headers=auth)
                made.append(r.json()["cid"])
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    result = json.loads(out)
    assert result["errors"] == [] and result["timedOut"] is False, result
    assert [summary(e) for e in result["events"][:-1]] == others
    last = result["events"][-1]
    assert last["kind"] == "commit" and last["commit"]["cid"] in made


def test_a_restarted_jetstream_resumes_from_its_upstream_cursor(network: Network) -> None:
    env = jetstream_env(network.relay_ws, network.plc)
    data = network.data / "restarting"
    with httpx.Client(base_url=network.pds, timeout=30) as client:
        account = {"handle": "restart.test", "email": "r@x.test", "password": PASSWORD}
        created = client.post("/xrpc/com.atproto.server.createAccount", json=account).json()
        did, auth = created["did"], {"authorization": f"Bearer {created['accessJwt']}"}

        def write(count: int) -> list[str]:
            cids = []
            for i in range(count):
                body = {"repo": did, "collection": POST, "record": post(f"r{i}")}
                r = client.post("/xrpc/com.atproto.repo.createRecord", json=body, headers=auth)
                assert r.status_code == 200, r.text
                cids.append(r.json()["cid"])
            return cids

        jetstream = ServiceProcess("jetstream", data, env=env)
        try:
            cursor = now_us()
            time.sleep(0.5)  # connected to the relay, live
            first = write(5)
            assert [
                e["commit"]["cid"]
                for e in read(
                    network.subscribe_url(f"wantedDids={did}&cursor={cursor}", jetstream.url), 5
                )
            ] == first
        finally:
            assert jetstream.stop() == 0, jetstream.log_tail()
        second = write(5)  # while it is down
        jetstream = ServiceProcess(
            "jetstream", data, env=env, port=int(jetstream.url.rsplit(":", 1)[1])
        )
        try:
            third = write(3)
            got = read(
                network.subscribe_url(f"wantedDids={did}&cursor={cursor}", jetstream.url), 13
            )
        finally:
            assert jetstream.stop() == 0, jetstream.log_tail()
    assert [e["commit"]["cid"] for e in got] == first + second + third

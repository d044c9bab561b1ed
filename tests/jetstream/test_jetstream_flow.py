"""Jetstream fed by a real relay: events for what a PDS writes, filters, cursors."""

from __future__ import annotations

import httpx
import pytest

from tests.jetstream.conftest import POST, Account, Network, open_stream, receive_until

pytestmark = pytest.mark.integration


async def test_post_and_delete_arrive_as_v1_events(
    network: Network, http: httpx.AsyncClient
) -> None:
    account = await Account.create(http, network.pds, "flow.test")
    async with open_stream(network.subscribe_url(f"wantedDids={account.did}")) as ws:
        created = await account.post(http, "hello <world> & all")
        rkey = created["uri"].rsplit("/", 1)[1]
        await account.delete(http, POST, rkey)
        events = await receive_until(
            ws, lambda evs: any(e.get("commit", {}).get("operation") == "delete" for e in evs)
        )
    commits = [e for e in events if e["kind"] == "commit"]
    create = next(e for e in commits if e["commit"]["operation"] == "create")
    assert create["did"] == account.did
    assert create["commit"]["collection"] == POST
    assert create["commit"]["rkey"] == rkey
    assert create["commit"]["cid"] == created["cid"]
    assert create["commit"]["record"]["text"] == "hello <world> & all"
    delete = commits[-1]
    assert delete["commit"] == {
        "rev": delete["commit"]["rev"],
        "operation": "delete",
        "collection": POST,
        "rkey": rkey,
    }
    keys = [e["time_us"] for e in events]
    assert keys == sorted(set(keys))

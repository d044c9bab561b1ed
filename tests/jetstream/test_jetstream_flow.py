"""Jetstream fed by a real relay: events for what a PDS writes, filters, cursors."""

from __future__ import annotations

import json

import httpx
import pytest
from websockets.exceptions import InvalidStatus

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


async def test_ten_thousand_wanted_dids_fit_in_the_query_and_one_more_is_refused(
    network: Network,
) -> None:
    dids = [f"did:plc:{i:024d}" for i in range(10_001)]
    query = "&".join(f"wantedDids={did}" for did in dids[:10_000])
    async with open_stream(network.subscribe_url(query)) as ws:
        await ws.ping()
    with pytest.raises(InvalidStatus) as refused:
        async with open_stream(network.subscribe_url(query + f"&wantedDids={dids[-1]}")):
            pass
    assert refused.value.response.status_code == 400
    body = json.loads(refused.value.response.body or b"{}")
    assert body == {"error": "InvalidRequest", "message": "too many wanted DIDs: 10001 > 10000"}

"""kill -9 during concurrent writes: every acknowledged write is in the repo and on the firehose.

Both-or-neither: after the restart the repo's records and the firehose's ops agree exactly,
unacknowledged writes may be in both or in neither, and the exported repo verifies.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from atcore.blockstore import MemoryBlockStore
from atcore.car import read_car
from atcore.frames import CommitEvent
from atcore.mst import walk
from atcore.repo import read_head
from atcore.syntax.tid import TidClock
from atcore.xrpc.stream import subscribe
from tests.pds.live_pds import pds_process
from tests.pds.test_firehose_live import create_account, post

pytestmark = [pytest.mark.slow, pytest.mark.integration]

POST = "app.bsky.feed.post"
WRITERS = 8


async def write_until_killed(
    url: str, did: str, token: str, acked: set[str], tried: set[str], clock: TidClock
) -> None:
    headers = {"authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=10) as client:
        while True:
            rkey = str(clock.next())
            tried.add(rkey)
            body = {"repo": did, "collection": POST, "rkey": rkey, "record": post(rkey)}
            try:
                r = await client.post("/xrpc/com.atproto.repo.createRecord", json=body)
            except httpx.TransportError:
                return  # the server died mid-request: this write is unacknowledged
            assert r.status_code == 200, r.text
            acked.add(rkey)


async def firehose_creates(url: str, did: str, head_rev: str) -> list[str]:
    """Every record created in `did`'s commits on the firehose, up to the commit `head_rev`."""
    paths: list[str] = []
    revs: list[str] = []
    stream = f"{url}/xrpc/com.atproto.sync.subscribeRepos"
    async for event in subscribe(stream, {"cursor": 0}):
        if isinstance(event, CommitEvent) and event.repo == did:
            revs.append(event.rev)
            paths += [op.path for op in event.ops if op.action == "create"]
            if event.rev == head_rev:
                break
    assert revs == sorted(revs) and len(set(revs)) == len(revs)
    return paths


async def list_all(client: httpx.AsyncClient, did: str) -> list[str]:
    rkeys: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"repo": did, "collection": POST, "limit": 100}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/xrpc/com.atproto.repo.listRecords", params=params)).json()
        rkeys += [r["uri"].rsplit("/", 1)[1] for r in page["records"]]
        cursor = page.get("cursor")
        if not cursor:
            return rkeys


async def test_kill_9_during_writes_loses_nothing_acknowledged(
    tmp_path: Path, plc_url: str
) -> None:
    data = tmp_path / "pds"
    acked: set[str] = set()
    tried: set[str] = set()
    with pds_process(data, plc_url) as server:
        async with httpx.AsyncClient(base_url=server.url) as client:
            created = await create_account(client, "crash.test")
        did, token = created["did"], created["accessJwt"]
        clock = TidClock()
        writers = [
            asyncio.create_task(write_until_killed(server.url, did, token, acked, tried, clock))
            for _ in range(WRITERS)
        ]
        deadline = time.monotonic() + 20
        while len(acked) < 150 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        server.kill()
        await asyncio.wait_for(asyncio.gather(*writers), 20)
    assert len(acked) >= 150

    with pds_process(data, plc_url) as server:
        async with httpx.AsyncClient(base_url=server.url) as client:
            in_repo = await list_all(client, did)
            latest = (
                await client.get("/xrpc/com.atproto.sync.getLatestCommit", params={"did": did})
            ).json()
            on_firehose = await firehose_creates(server.url, did, latest["rev"])
            assert acked <= set(in_repo), "an acknowledged write is missing from the repo"
            assert set(in_repo) <= tried
            assert sorted(on_firehose) == sorted(f"{POST}/{k}" for k in in_repo)  # both or neither
            assert len(on_firehose) == len(set(on_firehose))
            export = await client.get("/xrpc/com.atproto.sync.getRepo", params={"did": did})
    car = read_car(export.content)
    store = MemoryBlockStore(car.blocks.items())
    head = read_head(store, car.root)
    assert head.commit is not None and head.commit.rev == latest["rev"]
    assert walk.validate_tree(store, head.data) == len(in_repo)

"""subscribeRepos over real sockets: a websocket client sees every write, verifiable, in order."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from atcore.frames import CommitEvent
from atcore.keys import parse_multibase_key
from atcore.xrpc.stream import StreamError, subscribe
from tests.pds.live_pds import pds_process
from tests.pds.repo_env import check_commit_event

pytestmark = pytest.mark.integration

POST = "app.bsky.feed.post"
PASSWORD = "correct horse battery staple"


def post(text: str) -> dict[str, Any]:
    return {"$type": POST, "text": text, "createdAt": "2024-05-01T12:00:00.000Z"}


async def create_account(client: httpx.AsyncClient, handle: str) -> dict[str, Any]:
    body = {"handle": handle, "email": f"{handle}@example.com", "password": PASSWORD}
    r = await client.post("/xrpc/com.atproto.server.createAccount", json=body)
    assert r.status_code == 200, r.text
    created: dict[str, Any] = r.json()
    return created


async def test_live_subscriber_sees_every_write(tmp_path: Path, plc_url: str) -> None:
    with pds_process(tmp_path / "pds", plc_url) as server:
        stream = f"{server.url}/xrpc/com.atproto.sync.subscribeRepos"
        async with httpx.AsyncClient(base_url=server.url) as client:
            created = await create_account(client, "alice.test")
            did, token = created["did"], created["accessJwt"]
            doc = (await client.get(f"{plc_url}/{did}")).json()
            key = parse_multibase_key(doc["verificationMethod"][0]["publicKeyMultibase"])
            received: list[CommitEvent] = []
            ready = asyncio.Event()

            async def listen() -> None:
                async for event in subscribe(stream, {"cursor": 0}):
                    ready.set()
                    if isinstance(event, CommitEvent):
                        received.append(event)
                        if len(received) == 21:
                            return

            listener = asyncio.create_task(listen())
            await asyncio.wait_for(ready.wait(), 10)
            acked = []
            for i in range(20):
                r = await client.post(
                    "/xrpc/com.atproto.repo.createRecord",
                    json={"repo": did, "collection": POST, "record": post(str(i))},
                    headers={"authorization": f"Bearer {token}"},
                )
                assert r.status_code == 200, r.text
                acked.append(r.json())
            await asyncio.wait_for(listener, 20)
        genesis, *commits = received
        assert genesis.prev_data is None and genesis.repo == did
        assert [c.rev for c in commits] == [a["commit"]["rev"] for a in acked]
        assert [c.commit.encode() for c in commits] == [a["commit"]["cid"] for a in acked]
        seqs = [c.seq for c in received]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        for event in received:
            check_commit_event(event, key)

        # The replayed log holds identity and account events, and a future cursor is refused.
        kinds = []
        async for event in subscribe(stream, {"cursor": 0}):
            kinds.append(type(event).__name__)
            if getattr(event, "seq", 0) >= seqs[-1]:
                break
        assert "IdentityEvent" in kinds and "AccountEvent" in kinds and "SyncEvent" in kinds
        with pytest.raises(StreamError) as caught:
            async for _ in subscribe(stream, {"cursor": seqs[-1] + 100}):
                pass
        assert caught.value.error == "FutureCursor"

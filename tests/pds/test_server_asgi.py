"""The PDS under each ASGI server `SKYLOFT_ASGI_SERVER` can name: kept-alive HTTP/1.1 calls, the
firehose over a websocket, a clean exit on SIGTERM (checked by `running_service`)."""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path

import httpx
import pytest

from atcore.frames import CommitEvent
from atcore.xrpc.stream import subscribe
from runtime.serve import SERVER_ENV, SERVERS, server_name
from skyloft.services import ServiceFailed, ServiceProcess
from tests.pds.conftest import pds_env
from tests.pds.test_firehose_live import create_account, post
from tests.servers import running_service

pytestmark = pytest.mark.integration


def test_server_name() -> None:
    assert server_name({}) == "uvicorn"
    assert server_name({SERVER_ENV: " Hypercorn "}) == "hypercorn"
    with pytest.raises(SystemExit, match=SERVER_ENV):
        server_name({SERVER_ENV: "gunicorn"})


@pytest.mark.parametrize("server", SERVERS)
async def test_pds_under_each_server(tmp_path: Path, plc_url: str, server: str) -> None:
    if server != "hypercorn" and importlib.util.find_spec(server) is None:
        pytest.skip(f"{server} is not installed")
    env = pds_env(plc_url, **{SERVER_ENV: server})
    with running_service("pds", tmp_path / "pds", env=env) as url:
        transport = httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=1))
        async with httpx.AsyncClient(base_url=url, transport=transport) as client:
            created = await create_account(client, "alice.test")
            did, token = created["did"], created["accessJwt"]
            seen: asyncio.Queue[CommitEvent] = asyncio.Queue()

            async def listen() -> None:
                stream = f"{url}/xrpc/com.atproto.sync.subscribeRepos"
                async for event in subscribe(stream, {}):
                    if isinstance(event, CommitEvent):
                        await seen.put(event)

            listener = asyncio.create_task(listen())
            try:
                await asyncio.sleep(0.3)  # the subscriber is live before the write
                body = {"repo": did, "collection": "app.bsky.feed.post", "record": post("hi")}
                for _ in range(2):  # over the one kept-alive connection
                    r = await client.post(
                        "/xrpc/com.atproto.repo.createRecord",
                        json=body,
                        headers={"authorization": f"Bearer {token}"},
                    )
                    assert r.status_code == 200, r.text
                    event = await asyncio.wait_for(seen.get(), 10)
                    assert event.commit.encode() == r.json()["commit"]["cid"]
            finally:
                listener.cancel()
                await asyncio.gather(listener, return_exceptions=True)


def test_an_unknown_server_stops_start_up(tmp_path: Path, plc_url: str) -> None:
    env = pds_env(plc_url, **{SERVER_ENV: "gunicorn"})
    with pytest.raises(ServiceFailed, match=f"{SERVER_ENV} must be one of"):
        ServiceProcess("pds", tmp_path / "pds", env=env, timeout=20)

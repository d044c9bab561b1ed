"""Relay test fixtures: a real PLC process, the relay app in-process, fake PDS upstreams."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from atcore.frames import decode_frame
from atcore.identity.plc_client import PlcClient
from relay.config import RelayConfig
from relay.context import RelayContext
from tests.relay.fake_pds import FakeAccount, FakePds, serve_fake_pds
from tests.servers import running_service

ADMIN = "admin-secret"


@pytest.fixture(scope="session")
def plc_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_service("plc", tmp_path_factory.mktemp("relay-plc") / "data") as url:
        yield url


def relay_env(plc_url: str, **extra: str) -> dict[str, str]:
    return {
        "RELAY_DEV_MODE": "true",
        "RELAY_PLC_HOST": plc_url,
        "RELAY_ADMIN_PASSWORD": ADMIN,
        **extra,
    }


class Relay:
    """The in-process relay: an httpx client on its ASGI app, and its context."""

    def __init__(self, client: httpx.AsyncClient, ctx: RelayContext) -> None:
        self.client = client
        self.ctx = ctx

    async def get(self, nsid: str, **params: Any) -> httpx.Response:
        return await self.client.get(f"/xrpc/{nsid}", params=params)

    async def admin(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return await self.client.post(path, json=body, auth=("admin", ADMIN))

    async def events(self, cursor: int = 0) -> list[Any]:
        """Every event in the log after `cursor` (replay only)."""
        out = []
        head = self.ctx.writer.head
        if head <= cursor:
            return out
        async for frame in self.ctx.writer.subscribe(cursor):
            event = decode_frame(frame)
            out.append(event)
            if getattr(event, "seq", 0) >= head:
                break
        return out


async def serve_relay(config: RelayConfig) -> AsyncIterator[Relay]:
    from relay.app import create_app

    app = create_app(config, validate_output=True, backoff_base=0.05)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://relay.test") as client:
            yield Relay(client, app.state.ctx)


@pytest.fixture
async def relay(tmp_path: Path, plc_url: str) -> AsyncIterator[Relay]:
    config = RelayConfig.load(relay_env(plc_url), data_dir=str(tmp_path / "relay"))
    async for running in serve_relay(config):
        yield running


class Upstream:
    """A fake PDS served on a free port, its hostname as the relay knows it, and a PLC client."""

    def __init__(self, pds: FakePds, url: str, plc: PlcClient) -> None:
        self.pds = pds
        self.url = url
        self.hostname = "localhost:" + url.rsplit(":", 1)[1]
        self.plc = plc

    async def account(self, handle: str) -> FakeAccount:
        account = await FakeAccount.create(self.plc, f"http://{self.hostname}", handle)
        return self.pds.add(account)


async def serve_upstream(plc_url: str) -> AsyncIterator[Upstream]:
    pds = FakePds()
    async with httpx.AsyncClient() as http, serve_fake_pds(pds) as url:
        yield Upstream(pds, url, PlcClient(plc_url, http))


@pytest.fixture
async def upstream(plc_url: str) -> AsyncIterator[Upstream]:
    async for running in serve_upstream(plc_url):
        yield running


@pytest.fixture
async def upstream2(plc_url: str) -> AsyncIterator[Upstream]:
    async for running in serve_upstream(plc_url):
        yield running


async def wait_until(check: Callable[[], Awaitable[bool]], timeout: float = 15.0) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.02)

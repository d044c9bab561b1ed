"""PDS test fixtures: a real PLC directory process, and the PDS app in-process over ASGI."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pds.config import PdsConfig
from pds.context import AppContext
from tests.servers import running_service

PDS_URL = "http://localhost:2583"
PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="session")
def plc_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One PLC directory (`skyloft plc serve`) shared by the session's tests."""
    with running_service("plc", tmp_path_factory.mktemp("plc") / "data") as url:
        yield url


def pds_env(plc_url: str, **extra: str) -> dict[str, str]:
    return {
        "PDS_DEV_MODE": "true",
        "PDS_HOSTNAME": "localhost",
        "PDS_DID_PLC_URL": plc_url,
        **extra,
    }


@pytest.fixture
def pds_config(tmp_path: Path, plc_url: str) -> PdsConfig:
    return PdsConfig.load(pds_env(plc_url), data_dir=str(tmp_path / "pds"), port=2583)


class Pds:
    """The in-process PDS: an httpx client on its ASGI app, and its context."""

    def __init__(self, client: httpx.AsyncClient, ctx: AppContext) -> None:
        self.client = client
        self.ctx = ctx

    async def call(
        self,
        nsid: str,
        body: Any = None,
        *,
        token: str | None = None,
        params: dict[str, Any] | None = None,
        method: str | None = None,
    ) -> httpx.Response:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        verb = method or ("GET" if body is None else "POST")
        return await self.client.request(
            verb, f"/xrpc/{nsid}", json=body, params=params, headers=headers
        )

    async def create_account(self, handle: str, **extra: Any) -> dict[str, Any]:
        body = {"handle": handle, "email": f"{handle}@example.com", "password": PASSWORD}
        response = await self.call("com.atproto.server.createAccount", {**body, **extra})
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result


async def serve_in_process(config: PdsConfig) -> AsyncIterator[Pds]:
    from pds.app import create_app  # here, so the config tests run without the whole app

    app = create_app(config, validate_output=True)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=PDS_URL) as client:
            yield Pds(client, app.state.ctx)


@pytest.fixture
async def pds(pds_config: PdsConfig) -> AsyncIterator[Pds]:
    async for running in serve_in_process(pds_config):
        yield running

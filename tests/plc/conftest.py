"""The directory as an in-process ASGI app with an injectable clock (for time travel)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from plc.app import create_app
from plc.config import PlcConfig
from tests.plc.support import Clock


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def local_app(tmp_path: Path, clock: Clock) -> AsyncIterator[Starlette]:
    app = create_app(PlcConfig(data_dir=tmp_path / "local"), clock=clock)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def local(
    local_app: Starlette, clock: Clock
) -> AsyncIterator[tuple[httpx.AsyncClient, Clock]]:
    transport = httpx.ASGITransport(app=local_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://plc.test") as client:
        yield client, clock

"""Fixtures for the identity tests: a real HTTP server on 127.0.0.1 and a client routed to it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.atcore.identity.support import LocalNet, LocalServer


@pytest.fixture
async def server() -> AsyncIterator[LocalServer]:
    srv = LocalServer()
    await srv.start()
    yield srv
    await srv.stop()


@pytest.fixture
async def http(server: LocalServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=LocalNet(server.port)) as client:
        yield client

"""Jetstream fixtures: real PLC, PDS, relay and jetstream processes on free ports, and a
writer that creates records through the PDS's XRPC API."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.pds.conftest import pds_env, plc_url  # noqa: F401 (plc_url is a fixture)
from tests.relay.conftest import relay_env
from tests.servers import running_service

PASSWORD = "correct horse battery staple"
POST = "app.bsky.feed.post"
LIKE = "app.bsky.feed.like"
FOLLOW = "app.bsky.graph.follow"
TIMEOUT = 30.0


class Network:
    """The running services' URLs."""

    def __init__(self, plc: str, relay: str, pds: str, jetstream: str, data: Path) -> None:
        self.plc = plc
        self.relay = relay
        self.pds = pds
        self.jetstream = jetstream
        self.data = data

    @property
    def relay_ws(self) -> str:
        return self.relay.replace("http://", "ws://") + "/xrpc/com.atproto.sync.subscribeRepos"

    def subscribe_url(self, query: str = "", base: str | None = None) -> str:
        url = (base or self.jetstream).replace("http://", "ws://") + "/subscribe"
        return f"{url}?{query}" if query else url


def jetstream_env(network_relay_ws: str, plc: str, **extra: str) -> dict[str, str]:
    return {
        "JETSTREAM_WS_URL": network_relay_ws,
        "JETSTREAM_PLC_URL": plc,
        "JETSTREAM_DEV_MODE": "true",
        **extra,
    }


@pytest.fixture(scope="module")
def network(
    plc_url: str,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Network]:
    data = tmp_path_factory.mktemp("jetstream-net")
    with running_service("relay", data / "relay", env=relay_env(plc_url)) as relay:
        crawl = pds_env(plc_url, PDS_CRAWLERS=relay)
        with running_service("pds", data / "pds", env=crawl) as pds:
            relay_ws = relay.replace("http://", "ws://") + "/xrpc/com.atproto.sync.subscribeRepos"
            env = jetstream_env(relay_ws, plc_url)
            with running_service("jetstream", data / "jetstream", env=env) as jetstream:
                yield Network(plc_url, relay, pds, jetstream, data)


class Account:
    """An account on the PDS that writes records."""

    def __init__(self, pds: str, did: str, token: str) -> None:
        self.pds = pds
        self.did = did
        self.token = token

    @classmethod
    async def create(cls, http: httpx.AsyncClient, pds: str, handle: str) -> Account:
        body = {"handle": handle, "email": f"{handle}@x.test", "password": PASSWORD}
        r = await http.post(f"{pds}/xrpc/com.atproto.server.createAccount", json=body)
        assert r.status_code == 200, r.text
        return cls(pds, r.json()["did"], r.json()["accessJwt"])

    async def call(self, http: httpx.AsyncClient, nsid: str, body: dict[str, Any]) -> Any:
        r = await http.post(
            f"{self.pds}/xrpc/{nsid}", json=body, headers={"authorization": f"Bearer {self.token}"}
        )
        assert r.status_code == 200, r.text
        return r.json()

    async def create_record(
        self, http: httpx.AsyncClient, collection: str, record: dict[str, Any]
    ) -> dict[str, Any]:
        body = {"repo": self.did, "collection": collection, "record": record}
        result: dict[str, Any] = await self.call(http, "com.atproto.repo.createRecord", body)
        return result

    async def post(self, http: httpx.AsyncClient, text: str) -> dict[str, Any]:
        record = {"$type": POST, "text": text, "createdAt": "2025-01-01T00:00:00.000Z"}
        return await self.create_record(http, POST, record)

    async def delete(self, http: httpx.AsyncClient, collection: str, rkey: str) -> None:
        body = {"repo": self.did, "collection": collection, "rkey": rkey}
        await self.call(http, "com.atproto.repo.deleteRecord", body)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        yield client


async def receive_until(
    ws: ClientConnection, done: Any, timeout: float = TIMEOUT
) -> list[dict[str, Any]]:
    """Events from `ws` until `done(events)` is true."""
    events: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        while not done(events):
            message = await ws.recv()
            events.append(json.loads(message))
    return events


def open_stream(url: str, **kwargs: Any) -> Any:
    return connect(url, open_timeout=10, compression=None, proxy=None, **kwargs)

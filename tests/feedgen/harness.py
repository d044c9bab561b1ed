"""Helpers of the feed-generator tests: a feed generator process started on the jetstream
tests' network (real PLC, PDS, relay and jetstream processes)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.jetstream.conftest import Account, Network
from tests.servers import running_service

SKELETON = "/xrpc/app.bsky.feed.getFeedSkeleton"


class Feedgen:
    """A running `skyloft feedgen serve`: its URL, feed URI and service DID."""

    def __init__(self, url: str, info: dict[str, Any]) -> None:
        self.url = url
        self.did: str = info["did"]
        self.feed: str = info["feeds"][0]["uri"]

    async def skeleton(
        self, http: httpx.AsyncClient, token: str | None = None, **params: Any
    ) -> httpx.Response:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return await http.get(
            self.url + SKELETON, params={"feed": self.feed, **params}, headers=headers
        )

    async def posts(self, http: httpx.AsyncClient, token: str | None = None) -> list[str]:
        response = await self.skeleton(http, token, limit=100)
        assert response.status_code == 200, response.text
        return [entry["post"] for entry in response.json()["feed"]]

    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = httpx.get(self.url + "/", timeout=10).json()
        return status


@contextmanager
def running_feedgen(
    network: Network, data: Path, module: str, publisher: str, **env: str
) -> Iterator[Feedgen]:
    settings = {
        "FEEDGEN_DEV_MODE": "true",
        "FEEDGEN_PUBLISHER_DID": publisher,
        "FEEDGEN_PLC_URL": network.plc,
        "FEEDGEN_SUBSCRIPTION_ENDPOINT": network.relay_ws,
        **env,
    }
    with running_service("feedgen", data, module, env=settings) as url:
        info = httpx.get(url + "/xrpc/app.bsky.feed.describeFeedGenerator", timeout=10).json()
        yield Feedgen(url, info)


async def service_token(http: httpx.AsyncClient, account: Account, aud: str, **params: Any) -> str:
    r = await http.get(
        f"{account.pds}/xrpc/com.atproto.server.getServiceAuth",
        params={"aud": aud, "lxm": "app.bsky.feed.getFeedSkeleton", **params},
        headers={"authorization": f"Bearer {account.token}"},
    )
    assert r.status_code == 200, r.text
    token: str = r.json()["token"]
    return token


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.1)

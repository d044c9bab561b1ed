"""requestCrawl to every PDS_CRAWLERS relay: at start-up, on the first event, then throttled."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from pds.config import PdsConfig
from tests.atcore.identity.support import LocalServer, reply
from tests.pds.conftest import pds_env, serve_in_process

pytestmark = pytest.mark.integration
PATH = "/xrpc/com.atproto.sync.requestCrawl"


async def wait_for_requests(relay: LocalServer, count: int) -> None:
    async with asyncio.timeout(10):
        while len(relay.requests) < count:
            await asyncio.sleep(0.01)


async def test_relays_are_asked_to_crawl(tmp_path: Path, plc_url: str) -> None:
    relay, broken = LocalServer(), LocalServer()
    await relay.start()
    await broken.start()
    relay.route("*", PATH, reply(200, {}))
    broken.route("*", PATH, reply(500, {"error": "InternalServerError"}))
    crawlers = f"http://127.0.0.1:{relay.port},http://127.0.0.1:{broken.port}"
    env = pds_env(plc_url, PDS_CRAWLERS=crawlers)
    config = PdsConfig.load(env, data_dir=str(tmp_path / "pds"), port=2583)
    try:
        async for pds in serve_in_process(config):
            await wait_for_requests(relay, 1)
            await pds.create_account("crawled.test")
            await pds.create_account("crawled2.test")
            await wait_for_requests(relay, 2)
            await asyncio.sleep(0.2)
            # Start-up and the first event; the next events fall inside the 20-minute interval.
            assert len(relay.requests) == 2
            assert len(broken.requests) == 2
            # A dev-mode PDS is reached at http://localhost:<port>, so relays need the port.
            expected = ("POST", PATH, {"hostname": "localhost:2583"})
            for method, _, path, body in relay.requests:
                assert (method, path, json.loads(body)) == expected
    finally:
        await relay.stop()
        await broken.stop()

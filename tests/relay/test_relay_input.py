"""Hostile input to the relay's own endpoints: numbers and credentials are refused with 4xx."""

from __future__ import annotations

import pytest

from tests.relay.conftest import Relay


@pytest.mark.parametrize("cursor", ["\u00b2", "99999999999999999999", "-1", "1" * 5000, "x"])
async def test_list_hosts_refuses_a_bad_cursor(relay: Relay, cursor: str) -> None:
    r = await relay.get("com.atproto.sync.listHosts", cursor=cursor)
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "InvalidRequest"


@pytest.mark.parametrize("port", ["\u00b2", "9" * 5000])
async def test_request_crawl_refuses_a_bad_port(relay: Relay, port: str) -> None:
    r = await relay.client.post(
        "/xrpc/com.atproto.sync.requestCrawl", json={"hostname": f"localhost:{port}"}
    )
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "InvalidRequest"

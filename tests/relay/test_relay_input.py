"""Hostile input to the relay's own endpoints: numbers and credentials are refused with 4xx."""

from __future__ import annotations

import base64

import pytest

from tests.relay.conftest import ADMIN, Relay


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


BAD_BASIC = [
    b"Basic \xff\xfe",  # not base64: non-ASCII bytes
    b"Basic " + base64.b64encode(b"admin:\xff\xfe" + ADMIN.encode()),  # not UTF-8 inside
    b"Basic " + base64.b64encode(b"\xc3admin:" + ADMIN.encode()),
    b"Basic !!!",
    b"Basic",
    b"Basic " + base64.b64encode(b"admin"),  # no colon
]


@pytest.mark.parametrize("header", BAD_BASIC)
async def test_admin_refuses_malformed_basic_credentials(relay: Relay, header: bytes) -> None:
    r = await relay.client.get("/admin/pds/list", headers={"authorization": header})
    assert r.status_code == 401, r.text
    assert r.json()["error"] == "AuthenticationRequired"
    good = base64.b64encode(f"admin:{ADMIN}".encode())
    r = await relay.client.get("/admin/pds/list", headers={"authorization": b"Basic " + good})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    ("verb", "path"), [("GET", "/admin/repo/takedown"), ("PUT", "/admin/pds/list")]
)
async def test_admin_wrong_verb_is_a_json_405(relay: Relay, verb: str, path: str) -> None:
    r = await relay.client.request(verb, path, auth=("admin", ADMIN))
    assert r.status_code == 405, r.text
    assert r.json() == {"error": "InvalidRequest", "message": "Method Not Allowed"}
    r = await relay.client.get("/no/such/path")
    assert r.status_code == 404 and r.json()["message"] == "Not Found"
    assert (await relay.client.head("/admin/pds/list", auth=("admin", ADMIN))).status_code == 200


@pytest.mark.parametrize("raw", ["%ED%A0%80", "%C2%B2", "%FF%FE"])
async def test_undecodable_parameters_are_refused(relay: Relay, raw: str) -> None:
    r = await relay.client.get(f"/xrpc/com.atproto.sync.listHosts?cursor={raw}&limit={raw}")
    assert r.status_code == 400, r.text
    r = await relay.client.get(f"/xrpc/com.atproto.sync.getHostStatus?hostname={raw}")
    assert r.status_code == 400, r.text

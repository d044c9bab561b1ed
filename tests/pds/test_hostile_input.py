"""Hostile input to the PDS: lone UTF-16 surrogates and out-of-range numbers in bodies and
parameters are refused with 400 InvalidRequest, and nothing of them is stored."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from tests.pds.conftest import PASSWORD, Pds

POST = "app.bsky.feed.post"
LONE = "\ud800"


async def post_json(pds: Pds, nsid: str, body: Any, token: str | None = None) -> Any:
    """POST `body` as JSON with escapes kept (`"\\ud800"` on the wire, as a hostile client
    sends it: httpx's own encoder would refuse the surrogate)."""
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    content = json.dumps(body).encode()
    return await pds.client.post(f"/xrpc/{nsid}", content=content, headers=headers)


def assert_refused(response: Any) -> None:
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "InvalidRequest"


def post(text: str = "hi", **extra: Any) -> dict[str, Any]:
    return {"$type": POST, "text": text, "createdAt": "2024-01-01T00:00:00.000Z", **extra}


@pytest.mark.parametrize(
    ("nsid", "body"),
    [
        ("com.atproto.server.createSession", {"identifier": LONE, "password": "x"}),
        ("com.atproto.server.createSession", {"identifier": "alice.test", "password": LONE}),
        (
            "com.atproto.server.createAccount",
            {"handle": "bob.test", "email": "bob@example.com", "password": LONE},
        ),
        (
            "com.atproto.server.createAccount",
            {"handle": "bob.test", "email": f"b{LONE}@example.com", "password": PASSWORD},
        ),
    ],
)
async def test_unauthenticated_surrogates_are_refused(
    pds: Pds, nsid: str, body: dict[str, Any]
) -> None:
    await pds.create_account("alice.test")
    assert_refused(await post_json(pds, nsid, body))
    assert await pds.ctx.accounts.by_handle("bob.test") is None


@pytest.mark.parametrize(
    "write",
    [
        {"record": post(LONE)},
        {"record": post(**{f"key{LONE}": "x"})},
        {"record": post(), "rkey": f"a{LONE}"},
        {"record": post(data={"$bytes": LONE})},
        {"record": post(n=2**64)},
    ],
)
async def test_records_outside_the_data_model_are_refused(pds: Pds, write: dict[str, Any]) -> None:
    account = await pds.create_account("alice.test")
    did, token = account["did"], account["accessJwt"]
    body = {"repo": did, "collection": POST, **write}
    assert_refused(await post_json(pds, "com.atproto.repo.createRecord", body, token))
    listed = await pds.call(
        "com.atproto.repo.listRecords", params={"repo": did, "collection": POST}
    )
    assert listed.status_code == 200 and listed.json()["records"] == []


async def test_app_password_names_and_preferences_are_refused(pds: Pds) -> None:
    token = (await pds.create_account("alice.test"))["accessJwt"]
    body = {"name": LONE}
    assert_refused(await post_json(pds, "com.atproto.server.createAppPassword", body, token))
    pref = {"$type": "app.bsky.actor.defs#adultContentPref", "enabled": True, "note": LONE}
    body = {"preferences": [pref]}
    assert_refused(await post_json(pds, "app.bsky.actor.putPreferences", body, token))
    # Nothing was stored: reading the preferences still works.
    read = await pds.call("app.bsky.actor.getPreferences", token=token)
    assert read.status_code == 200, read.text
    assert read.json() == {"preferences": []}


@pytest.mark.parametrize("value", ["%ED%A0%80", "%ED%B0%80x", "%FF"])
async def test_undecodable_parameters_are_refused(pds: Pds, value: str) -> None:
    r = await pds.client.get(f"/xrpc/com.atproto.repo.describeRepo?repo={value}")
    assert_refused(r)
    r = await pds.client.get(f"/xrpc/com.atproto.sync.listRepos?cursor={value}&limit={value}")
    assert_refused(r)


@pytest.mark.parametrize(
    "header",
    [
        b"Basic \xff\xfe",  # not base64: non-ASCII bytes
        b"Basic " + base64.b64encode(b"admin:\xff\xfeadmin"),  # not UTF-8 inside
        b"Basic !!!",
        b"Basic",
        b"Basic " + base64.b64encode(b"admin"),  # no colon
    ],
)
async def test_admin_refuses_malformed_basic_credentials(pds: Pds, header: bytes) -> None:
    account = await pds.create_account("alice.test")
    params = {"did": account["did"]}
    url = "/xrpc/com.atproto.admin.getAccountInfo"
    r = await pds.client.get(url, params=params, headers={"authorization": header})
    assert r.status_code == 401, r.text
    good = b"Basic " + base64.b64encode(b"admin:admin")
    r = await pds.client.get(url, params=params, headers={"authorization": good})
    assert r.status_code == 200, r.text


async def test_unrouted_paths_and_wrong_verbs_answer_in_json(pds: Pds) -> None:
    wrong_verb = await pds.client.post("/robots.txt")
    assert wrong_verb.status_code == 405
    assert wrong_verb.json() == {"error": "InvalidRequest", "message": "Method Not Allowed"}
    nowhere = await pds.client.get("/no/such/path")
    assert nowhere.status_code == 404 and nowhere.json()["message"] == "Not Found"

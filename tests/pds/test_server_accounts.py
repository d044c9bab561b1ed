"""com.atproto.server account and session methods against a real PLC directory process."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from atcore.frames import AccountEvent, IdentityEvent, decode_frame
from atcore.identity.diddoc import parse_did_document
from atcore.jwt import decode, encode_hs256
from atcore.keys import generate_k256
from atcore.syntax.did import Did
from tests.pds.conftest import PASSWORD, PDS_URL, Pds

pytestmark = pytest.mark.integration


def error_of(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]


async def plc_document(plc_url: str, did: str) -> dict[str, Any]:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{plc_url}/{did}")
    assert response.status_code == 200, response.text
    doc: dict[str, Any] = response.json()
    return doc


async def events_of(pds: Pds, did: str) -> list[Any]:
    """Every event the firehose log holds for `did`, in order."""
    head = pds.ctx.sequencer.head
    found: list[Any] = []
    if head == 0:
        return found
    async for frame in pds.ctx.sequencer.subscribe(0):
        event = decode_frame(frame)
        if getattr(event, "did", None) == did or getattr(event, "repo", None) == did:
            found.append(event)
        if getattr(event, "seq", 0) >= head:
            break
    return found


async def test_create_account_registers_a_did_naming_this_pds(pds: Pds, plc_url: str) -> None:
    created = await pds.create_account("alice.test")
    did = created["did"]
    assert did.startswith("did:plc:") and created["handle"] == "alice.test"
    doc = parse_did_document(await plc_document(plc_url, did), Did(did))
    assert doc.handle == "alice.test"
    assert doc.pds_endpoint == PDS_URL
    signing_key = await pds.ctx.actors.signing_key(did)
    assert doc.signing_key == signing_key.public_key()
    async with httpx.AsyncClient() as client:
        data = (await client.get(f"{plc_url}/{did}/data")).json()
    assert data["rotationKeys"] == [pds.ctx.plc_rotation_key.public_key().did_key()]
    assert parse_did_document(created["didDoc"], Did(did)) == doc
    kinds = [type(e) for e in await events_of(pds, did)]
    assert kinds[:2] == [IdentityEvent, AccountEvent]


async def test_sessions_by_handle_did_or_email(pds: Pds) -> None:
    created = await pds.create_account("bob.test")
    for identifier in ("bob.test", "BOB.test", created["did"], "Bob.Test@example.com"):
        response = await pds.call(
            "com.atproto.server.createSession", {"identifier": identifier, "password": PASSWORD}
        )
        assert response.status_code == 200, response.text
        session = response.json()
        assert (session["did"], session["handle"]) == (created["did"], "bob.test")
        assert session["active"] is True and session["email"] == "bob.test@example.com"
    for identifier, password in (("bob.test", "wrong"), ("nobody.test", PASSWORD)):
        response = await pds.call(
            "com.atproto.server.createSession", {"identifier": identifier, "password": password}
        )
        assert error_of(response) == (401, "AuthenticationRequired")
        assert response.json()["message"] == "Invalid identifier or password"


async def test_access_token_shape_and_get_session(pds: Pds) -> None:
    created = await pds.create_account("carol.test")
    access = decode(created["accessJwt"])
    assert access.header == {"typ": "at+jwt", "alg": "HS256"}
    claims = access.payload
    assert claims["scope"] == "com.atproto.access" and claims["sub"] == created["did"]
    assert claims["aud"] == "did:web:localhost"
    assert claims["exp"] - claims["iat"] == 2 * 3600
    refresh = decode(created["refreshJwt"]).payload
    assert refresh["scope"] == "com.atproto.refresh" and refresh["jti"]
    assert refresh["exp"] - refresh["iat"] == 90 * 24 * 3600

    response = await pds.call("com.atproto.server.getSession", token=created["accessJwt"])
    assert response.status_code == 200
    assert response.json()["handle"] == "carol.test" and response.json()["active"] is True
    assert error_of(await pds.call("com.atproto.server.getSession")) == (401, "AuthMissing")
    for bad in (created["refreshJwt"], "garbage", created["accessJwt"][:-2] + "AA"):
        response = await pds.call("com.atproto.server.getSession", token=bad)
        assert error_of(response) == (400, "InvalidToken")
    now = int(time.time())
    expired = encode_hs256(
        {**claims, "iat": now - 7300, "exp": now - 100}, pds.ctx.config.jwt_secret, "at+jwt"
    )
    response = await pds.call("com.atproto.server.getSession", token=expired)
    assert error_of(response) == (400, "ExpiredToken")


async def test_refresh_rotates_and_refuses_reuse(pds: Pds) -> None:
    created = await pds.create_account("dave.test")
    first = created["refreshJwt"]
    response = await pds.call("com.atproto.server.refreshSession", method="POST", token=first)
    assert response.status_code == 200, response.text
    second = response.json()
    assert second["refreshJwt"] != first and second["did"] == created["did"]
    reused = await pds.call("com.atproto.server.refreshSession", method="POST", token=first)
    assert error_of(reused) == (400, "ExpiredToken")
    response = await pds.call("com.atproto.server.getSession", token=second["accessJwt"])
    assert response.status_code == 200
    deleted = await pds.call(
        "com.atproto.server.deleteSession", method="POST", token=second["refreshJwt"]
    )
    assert deleted.status_code == 200
    after = await pds.call(
        "com.atproto.server.refreshSession", method="POST", token=second["refreshJwt"]
    )
    assert error_of(after) == (400, "ExpiredToken")
    with_access = await pds.call(
        "com.atproto.server.refreshSession", method="POST", token=created["accessJwt"]
    )
    assert error_of(with_access) == (400, "InvalidToken")


async def test_service_auth_verifies_against_the_did_document(pds: Pds, plc_url: str) -> None:
    created = await pds.create_account("erin.test")
    did, token = created["did"], created["accessJwt"]
    params = {"aud": "did:web:appview.test", "lxm": "app.bsky.feed.getTimeline"}
    response = await pds.call("com.atproto.server.getServiceAuth", params=params, token=token)
    assert response.status_code == 200, response.text
    jwt = decode(response.json()["token"])
    assert jwt.header == {"typ": "JWT", "alg": "ES256K"}
    claims = jwt.payload
    assert (claims["iss"], claims["aud"], claims["lxm"]) == (did, params["aud"], params["lxm"])
    assert claims["exp"] - claims["iat"] == 60 and len(claims["jti"]) == 32
    key = parse_did_document(await plc_document(plc_url, did), Did(did)).require_signing_key()
    jwt.verify_key(key)
    assert not key.verify(jwt.signing_input + b"x", jwt.signature)

    now = int(time.time())
    for bad in (
        {**params, "exp": now - 10},
        {**params, "exp": now + 7200},
        {"aud": params["aud"], "exp": now + 600},
    ):
        response = await pds.call("com.atproto.server.getServiceAuth", params=bad, token=token)
        assert error_of(response) == (400, "BadExpiration")
    response = await pds.call(
        "com.atproto.server.getServiceAuth", params={"aud": "appview"}, token=token
    )
    assert error_of(response) == (400, "InvalidRequest")


async def test_deactivate_then_activate(pds: Pds) -> None:
    created = await pds.create_account("frank.test")
    did, token = created["did"], created["accessJwt"]
    response = await pds.call("com.atproto.server.deactivateAccount", {}, token=token)
    assert response.status_code == 200, response.text
    session = (await pds.call("com.atproto.server.getSession", token=token)).json()
    assert (session["active"], session["status"]) == (False, "deactivated")
    login = await pds.call(
        "com.atproto.server.createSession", {"identifier": "frank.test", "password": PASSWORD}
    )
    assert login.status_code == 200 and login.json()["active"] is False
    status = (await pds.call("com.atproto.server.checkAccountStatus", token=token)).json()
    assert status["activated"] is False and status["validDid"] is True
    response = await pds.call("com.atproto.server.activateAccount", method="POST", token=token)
    assert response.status_code == 200, response.text
    session = (await pds.call("com.atproto.server.getSession", token=token)).json()
    assert session["active"] is True and "status" not in session
    account_events = [e for e in await events_of(pds, did) if isinstance(e, AccountEvent)]
    assert [(e.active, e.status) for e in account_events] == [
        (True, None),
        (False, "deactivated"),
        (True, None),
    ]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"handle": "ab.test"}, "InvalidHandle"),
        ({"handle": "a.b.test"}, "InvalidHandle"),
        ({"handle": "waytoolongforahandle.test"}, "InvalidHandle"),
        ({"handle": "admin.test"}, "HandleNotAvailable"),
        ({"handle": "grace.example.com"}, "UnsupportedDomain"),
        ({"handle": "not a handle"}, "InvalidRequest"),
        ({"password": ""}, "InvalidPassword"),
        ({"email": "not-an-email"}, "InvalidRequest"),
        ({"recoveryKey": "did:key:zBad"}, "InvalidRequest"),
    ],
)
async def test_bad_create_account_input(pds: Pds, change: dict[str, str], expected: str) -> None:
    body = {"handle": "grace.test", "email": "grace@example.com", "password": PASSWORD, **change}
    response = await pds.call("com.atproto.server.createAccount", body)
    assert error_of(response) == (400, expected)
    assert await pds.ctx.accounts.by_email("grace@example.com") is None


async def test_recovery_key_equal_to_the_servers_rotation_key_is_refused(pds: Pds) -> None:
    own = pds.ctx.plc_rotation_key.public_key().did_key()
    body = {"handle": "ivan.test", "email": "ivan@example.com", "password": PASSWORD}
    response = await pds.call("com.atproto.server.createAccount", {**body, "recoveryKey": own})
    assert error_of(response) == (400, "InvalidRequest")
    assert "own rotation key" in response.json()["message"]
    assert await pds.ctx.accounts.by_email("ivan@example.com") is None
    other = generate_k256().public_key().did_key()
    created = await pds.call("com.atproto.server.createAccount", {**body, "recoveryKey": other})
    assert created.status_code == 200, created.text


async def test_taken_handle_and_email(pds: Pds) -> None:
    await pds.create_account("heidi.test")
    body = {"handle": "HEIDI.test", "email": "other@example.com", "password": PASSWORD}
    response = await pds.call("com.atproto.server.createAccount", body)
    assert error_of(response) == (400, "HandleNotAvailable")
    body = {"handle": "heidi2.test", "email": "Heidi.Test@Example.com", "password": PASSWORD}
    response = await pds.call("com.atproto.server.createAccount", body)
    assert error_of(response) == (400, "InvalidRequest")
    assert "Email already taken" in response.json()["message"]


async def test_malformed_bodies_are_400(pds: Pds) -> None:
    response = await pds.client.post(
        "/xrpc/com.atproto.server.createAccount",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert error_of(response) == (400, "InvalidRequest")
    response = await pds.call("com.atproto.server.createSession", {"identifier": "x"})
    assert error_of(response) == (400, "InvalidRequest")


async def test_check_account_status_describes_the_repo(pds: Pds) -> None:
    created = await pds.create_account("ophelia.test")
    token = created["accessJwt"]
    before = (await pds.call("com.atproto.server.checkAccountStatus", token=token)).json()
    assert before["activated"] is True and before["validDid"] is True
    assert before["indexedRecords"] == 0 and before["repoBlocks"] >= 2
    post = {"$type": "app.bsky.feed.post", "text": "hi", "createdAt": "2026-01-01T00:00:00.000Z"}
    body = {"repo": created["did"], "collection": "app.bsky.feed.post", "record": post}
    written = await pds.call("com.atproto.repo.createRecord", body, token=token)
    assert written.status_code == 200, written.text
    after = (await pds.call("com.atproto.server.checkAccountStatus", token=token)).json()
    assert after["indexedRecords"] == 1
    assert after["repoCommit"] == written.json()["commit"]["cid"]
    assert after["repoRev"] == written.json()["commit"]["rev"] > before["repoRev"]
    assert after["repoBlocks"] > before["repoBlocks"]

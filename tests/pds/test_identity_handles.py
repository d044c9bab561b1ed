"""com.atproto.identity handle methods and /.well-known/atproto-did against a real PLC."""

from __future__ import annotations

import httpx
import pytest

from atcore.frames import IdentityEvent
from atcore.identity.diddoc import parse_did_document
from atcore.syntax.did import Did
from tests.pds.conftest import Pds
from tests.pds.test_server_accounts import error_of, events_of, plc_document

pytestmark = pytest.mark.integration


async def test_update_handle_changes_the_plc_document(pds: Pds, plc_url: str) -> None:
    created = await pds.create_account("ivan.test")
    did, token = created["did"], created["accessJwt"]
    response = await pds.call(
        "com.atproto.identity.updateHandle", {"handle": "Ivan2.test"}, token=token
    )
    assert response.status_code == 200, response.text
    doc = parse_did_document(await plc_document(plc_url, did), Did(did))
    assert doc.handle == "ivan2.test" and doc.pds_endpoint == pds.ctx.config.public_url
    session = (await pds.call("com.atproto.server.getSession", token=token)).json()
    assert session["handle"] == "ivan2.test"
    identities = [e for e in await events_of(pds, did) if isinstance(e, IdentityEvent)]
    assert [e.handle for e in identities] == ["ivan.test", "ivan2.test"]

    resolved = await pds.call("com.atproto.identity.resolveHandle", params={"handle": "IVAN2.test"})
    assert resolved.json() == {"did": did}
    gone = await pds.call("com.atproto.identity.resolveHandle", params={"handle": "ivan.test"})
    assert error_of(gone) == (400, "HandleNotFound")


async def test_session_did_document_is_cached_until_the_identity_changes(pds: Pds) -> None:
    created = await pds.create_account("olga.test")
    did, token = created["did"], created["accessJwt"]
    plc_calls: list[str] = []

    async def note(request: httpx.Request) -> None:
        if request.url.path.startswith(f"/{did}"):
            plc_calls.append(request.url.path)

    pds.ctx.http.event_hooks["request"].append(note)
    first = (await pds.call("com.atproto.server.getSession", token=token)).json()
    second = (await pds.call("com.atproto.server.getSession", token=token)).json()
    assert first["didDoc"] == second["didDoc"] == created["didDoc"]
    assert plc_calls == [], "the document fetched at createAccount is reused"

    response = await pds.call(
        "com.atproto.identity.updateHandle", {"handle": "olga2.test"}, token=token
    )
    assert response.status_code == 200, response.text
    plc_calls.clear()
    session = (await pds.call("com.atproto.server.getSession", token=token)).json()
    assert session["didDoc"]["alsoKnownAs"] == ["at://olga2.test"]
    assert plc_calls, "the handle change dropped the cached document"


async def test_update_handle_refuses_taken_reserved_and_foreign(pds: Pds, plc_url: str) -> None:
    await pds.create_account("judy.test")
    created = await pds.create_account("karl.test")
    for handle, expected in (
        ("judy.test", "InvalidRequest"),  # the reference 0.4.217: a bare InvalidRequest
        ("admin.test", "HandleNotAvailable"),
        ("karl.example.com", "InvalidHandle"),
        ("k.test", "InvalidHandle"),
    ):
        response = await pds.call(
            "com.atproto.identity.updateHandle", {"handle": handle}, token=created["accessJwt"]
        )
        assert error_of(response) == (400, expected), handle
    doc = parse_did_document(await plc_document(plc_url, created["did"]), Did(created["did"]))
    assert doc.handle == "karl.test"
    response = await pds.call("com.atproto.identity.updateHandle", {"handle": "karl2.test"})
    assert error_of(response) == (401, "AuthMissing")


async def test_well_known_atproto_did_by_host(pds: Pds) -> None:
    created = await pds.create_account("laura.test")
    response = await pds.client.get("/.well-known/atproto-did", headers={"host": "laura.test:2583"})
    assert response.status_code == 200 and response.text == created["did"]
    response = await pds.client.get("/.well-known/atproto-did", headers={"host": "Laura.Test"})
    assert response.text == created["did"]
    response = await pds.client.get("/.well-known/atproto-did", headers={"host": "nobody.test"})
    assert response.status_code == 404


async def test_service_did_document_and_banner(pds: Pds) -> None:
    doc = (await pds.client.get("/.well-known/did.json")).json()
    assert doc["id"] == "did:web:localhost"
    parsed = parse_did_document(doc, Did("did:web:localhost"))
    assert parsed.pds_endpoint == pds.ctx.config.public_url
    assert (await pds.client.get("/xrpc/_health")).json()["version"]
    assert "AT Protocol" in (await pds.client.get("/")).text


async def test_recommended_credentials(pds: Pds) -> None:
    created = await pds.create_account("mallory.test")
    response = await pds.call(
        "com.atproto.identity.getRecommendedDidCredentials", token=created["accessJwt"]
    )
    key = await pds.ctx.actors.signing_key(created["did"])
    assert response.json() == {
        "rotationKeys": [pds.ctx.plc_rotation_key.public_key().did_key()],
        "alsoKnownAs": ["at://mallory.test"],
        "verificationMethods": {"atproto": key.public_key().did_key()},
        "services": {
            "atproto_pds": {
                "type": "AtprotoPersonalDataServer",
                "endpoint": pds.ctx.config.public_url,
            }
        },
    }

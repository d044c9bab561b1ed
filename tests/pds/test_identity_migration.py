"""Moving an account between two PDSes (pds-ACCOUNT_MIGRATION.md) and invite codes."""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from atcore.frames import AccountEvent, IdentityEvent, SyncEvent
from atcore.identity.diddoc import parse_did_document
from atcore.syntax.did import Did
from pds.config import PdsConfig
from tests.pds.conftest import PASSWORD, Pds, pds_env, serve_in_process
from tests.pds.test_server_accounts import error_of, events_of, plc_document

pytestmark = pytest.mark.integration
CREATE = "com.atproto.server.createAccount"


@pytest.fixture
async def pds_b(tmp_path: Path, plc_url: str) -> AsyncIterator[Pds]:
    env = pds_env(plc_url, PDS_HOSTNAME="pdsb.test")
    config = PdsConfig.load(env, data_dir=str(tmp_path / "pds-b"), port=2583)
    async for running in serve_in_process(config):
        yield running


async def service_token(pds: Pds, access: str, aud: str, lxm: str = CREATE) -> str:
    params = {"aud": aud, "lxm": lxm}
    response = await pds.call("com.atproto.server.getServiceAuth", params=params, token=access)
    assert response.status_code == 200, response.text
    token: str = response.json()["token"]
    return token


async def test_migrate_an_account_to_another_pds(
    pds: Pds, pds_b: Pds, plc_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    old = await pds.create_account("nina.test")
    did, old_access = old["did"], old["accessJwt"]
    token = await service_token(pds, old_access, pds_b.ctx.service_did)
    body = {"did": did, "handle": "nina.test", "email": "nina@example.com", "password": PASSWORD}
    response = await pds_b.call(CREATE, body, token=token)
    assert response.status_code == 200, response.text
    new_access = response.json()["accessJwt"]
    session = (await pds_b.call("com.atproto.server.getSession", token=new_access)).json()
    assert (session["did"], session["active"], session["status"]) == (did, False, "deactivated")
    announced = [e for e in await events_of(pds_b, did) if isinstance(e, IdentityEvent)]
    assert announced == []

    creds = await pds_b.call("com.atproto.identity.getRecommendedDidCredentials", token=new_access)
    with caplog.at_level("WARNING", logger="pds.mailer"):
        response = await pds.call(
            "com.atproto.identity.requestPlcOperationSignature", method="POST", token=old_access
        )
    assert response.status_code == 200
    code = re.findall(r"Your code: (\S+)", caplog.text)[-1]
    sign = "com.atproto.identity.signPlcOperation"
    wrong = await pds.call(sign, {"token": "AAAAA-BBBBB", **creds.json()}, token=old_access)
    assert error_of(wrong) == (400, "InvalidToken")
    signed = await pds.call(sign, {"token": code, **creds.json()}, token=old_access)
    assert signed.status_code == 200, signed.text
    again = await pds.call(sign, {"token": code, **creds.json()}, token=old_access)
    assert error_of(again) == (400, "InvalidToken")

    operation = signed.json()["operation"]
    submit = "com.atproto.identity.submitPlcOperation"
    refused = await pds.call(submit, {"operation": operation}, token=old_access)
    assert error_of(refused) == (400, "InvalidRequest")
    response = await pds_b.call(submit, {"operation": operation}, token=new_access)
    assert response.status_code == 200, response.text
    doc = parse_did_document(await plc_document(plc_url, did), Did(did))
    assert doc.pds_endpoint == pds_b.ctx.config.public_url
    assert doc.signing_key == (await pds_b.ctx.actors.signing_key(did)).public_key()

    status = (await pds_b.call("com.atproto.server.checkAccountStatus", token=new_access)).json()
    assert (status["activated"], status["validDid"]) == (False, True)
    response = await pds_b.call(
        "com.atproto.server.activateAccount", method="POST", token=new_access
    )
    assert response.status_code == 200, response.text
    kinds = [type(e) for e in await events_of(pds_b, did)]
    assert kinds[-3:] == [IdentityEvent, AccountEvent, SyncEvent]
    response = await pds.call("com.atproto.server.deactivateAccount", {}, token=old_access)
    assert response.status_code == 200
    old_status = (await pds.call("com.atproto.server.checkAccountStatus", token=old_access)).json()
    assert (old_status["activated"], old_status["validDid"]) == (False, False)


async def test_migration_needs_a_token_from_the_did(pds: Pds, pds_b: Pds) -> None:
    alice = await pds.create_account("oscar.test")
    other = await pds.create_account("peggy.test")
    did = alice["did"]
    body = {"did": did, "handle": "oscar.test", "email": "o@example.com", "password": PASSWORD}
    aud = pds_b.ctx.service_did
    cases = [
        (None, "AuthenticationRequired"),
        (
            await service_token(pds, alice["accessJwt"], aud, "com.atproto.repo.createRecord"),
            "BadJwtLexiconMethod",
        ),
        (await service_token(pds, alice["accessJwt"], "did:web:elsewhere.test"), "BadJwtAudience"),
        (await service_token(pds, other["accessJwt"], aud), "AuthenticationRequired"),
    ]
    forged = await service_token(pds, alice["accessJwt"], aud)
    head, payload, sig = forged.split(".")
    cases.append(
        (
            f"{head}.{payload}.{base64.urlsafe_b64encode(bytes(64)).decode().rstrip('=')}",
            "BadJwtSignature",
        )
    )
    for token, expected in cases:
        response = await pds_b.call(CREATE, body, token=token)
        assert error_of(response) == (401, expected)
    assert await pds_b.ctx.accounts.by_did(did) is None


async def test_invite_codes_when_required(tmp_path: Path, plc_url: str) -> None:
    env = pds_env(plc_url, PDS_INVITE_REQUIRED="true")
    config = PdsConfig.load(env, data_dir=str(tmp_path / "invites"), port=2583)
    async for pds in serve_in_process(config):
        described = (await pds.call("com.atproto.server.describeServer")).json()
        assert described["inviteCodeRequired"] is True
        body = {"handle": "quinn.test", "email": "quinn@example.com", "password": PASSWORD}
        assert error_of(await pds.call(CREATE, body)) == (400, "InvalidInviteCode")
        bad = await pds.call(CREATE, {**body, "inviteCode": "nope"})
        assert error_of(bad) == (400, "InvalidInviteCode")
        basic = base64.b64encode(f"admin:{config.admin_password}".encode()).decode()
        response = await pds.client.post(
            "/xrpc/com.atproto.server.createInviteCode",
            json={"useCount": 1},
            headers={"authorization": f"Basic {basic}"},
        )
        assert response.status_code == 200, response.text
        code = response.json()["code"]
        assert (await pds.call(CREATE, {**body, "inviteCode": code})).status_code == 200
        second = {"handle": "rupert.test", "email": "r@example.com", "password": PASSWORD}
        used = await pds.call(CREATE, {**second, "inviteCode": code})
        assert error_of(used) == (400, "InvalidInviteCode")
        unauthorized = await pds.client.post(
            "/xrpc/com.atproto.server.createInviteCode", json={"useCount": 1}
        )
        assert error_of(unauthorized) == (401, "AuthenticationRequired")

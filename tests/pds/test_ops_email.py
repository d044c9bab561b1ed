"""Mailed codes through a real SMTP server (aiosmtpd): email confirmation and change, password
reset, account deletion; `skyloft pds test-email`; a mail server that is down."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from atcore.frames import AccountEvent
from pds.config import PdsConfig
from tests.pds.conftest import PASSWORD, Pds, pds_env, serve_in_process
from tests.pds.smtp_server import Inbox, free_port, smtp_server
from tests.pds.test_server_accounts import error_of, events_of

SENDER = "pds@example.com"


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    with smtp_server() as running:
        yield running


@pytest.fixture
async def mailing_pds(pds_config: PdsConfig, inbox: Inbox) -> AsyncIterator[Pds]:
    config = dataclasses.replace(pds_config, email_smtp_url=inbox.url, email_from_address=SENDER)
    async for running in serve_in_process(config):
        yield running


async def session_of(pds: Pds, token: str) -> dict[str, object]:
    response = await pds.call("com.atproto.server.getSession", token=token)
    assert response.status_code == 200, response.text
    session: dict[str, object] = response.json()
    return session


async def test_confirm_then_change_email(mailing_pds: Pds, inbox: Inbox) -> None:
    pds = mailing_pds
    account = await pds.create_account("erin.test")
    token, address = account["accessJwt"], "erin.test@example.com"
    request = "com.atproto.server.requestEmailConfirmation"
    assert (await pds.call(request, token=token, method="POST")).status_code == 200
    mail = inbox.messages[-1]
    assert (mail["To"], mail["From"]) == (address, SENDER)
    assert inbox.logins == ["mailer"]
    code = inbox.last_code(address)
    confirm = "com.atproto.server.confirmEmail"
    wrong = await pds.call(confirm, {"email": "other@example.com", "token": code}, token=token)
    assert error_of(wrong) == (400, "InvalidEmail")
    bad = await pds.call(confirm, {"email": address, "token": "AAAAA-BBBBB"}, token=token)
    assert error_of(bad) == (400, "InvalidToken")
    done = await pds.call(confirm, {"email": address, "token": code}, token=token)
    assert done.status_code == 200, done.text
    assert (await session_of(pds, token))["emailConfirmed"] is True

    # A confirmed address must approve the change with a code sent to it.
    update = "com.atproto.server.updateEmail"
    asked = await pds.call("com.atproto.server.requestEmailUpdate", token=token, method="POST")
    assert asked.json() == {"tokenRequired": True}
    code = inbox.last_code(address)
    no_code = await pds.call(update, {"email": "erin2@example.com"}, token=token)
    assert error_of(no_code) == (400, "TokenRequired")
    changed = await pds.call(update, {"email": "Erin2@example.com", "token": code}, token=token)
    assert changed.status_code == 200, changed.text
    session = await session_of(pds, token)
    assert (session["email"], session["emailConfirmed"]) == ("erin2@example.com", False)
    reused = await pds.call(update, {"email": "erin3@example.com", "token": code}, token=token)
    assert reused.status_code == 200  # unconfirmed again: no code needed, as the reference
    other = await pds.create_account("frank.test")
    taken = await pds.call(update, {"email": "erin3@example.com"}, token=other["accessJwt"])
    assert error_of(taken) == (400, "InvalidRequest")


async def test_password_reset(mailing_pds: Pds, inbox: Inbox) -> None:
    pds = mailing_pds
    account = await pds.create_account("gina.test")
    reset = "com.atproto.server.requestPasswordReset"
    assert (await pds.call(reset, {"email": "nobody@example.com"})).status_code == 200
    assert inbox.messages == []
    assert (await pds.call(reset, {"email": "GINA.test@example.com"})).status_code == 200
    code = inbox.last_code("gina.test@example.com")
    assert b"gina.test" in inbox.messages[-1].get_payload(decode=True)
    do_reset = "com.atproto.server.resetPassword"
    bad = await pds.call(do_reset, {"token": "AAAAA-BBBBB", "password": "new password 1"})
    assert error_of(bad) == (400, "InvalidToken")
    good = await pds.call(do_reset, {"token": code, "password": "new password 1"})
    assert good.status_code == 200, good.text
    again = await pds.call(do_reset, {"token": code, "password": "new password 2"})
    assert error_of(again) == (400, "InvalidToken")
    login = "com.atproto.server.createSession"
    old = await pds.call(login, {"identifier": "gina.test", "password": PASSWORD})
    assert error_of(old) == (401, "AuthenticationRequired")
    new = await pds.call(login, {"identifier": "gina.test", "password": "new password 1"})
    assert new.status_code == 200
    # Sessions opened with the old password are over.
    refresh = "com.atproto.server.refreshSession"
    stale = await pds.call(refresh, token=account["refreshJwt"], method="POST")
    assert error_of(stale) == (400, "ExpiredToken")


async def test_delete_account_with_mailed_code(mailing_pds: Pds, inbox: Inbox) -> None:
    pds = mailing_pds
    account = await pds.create_account("hank.test")
    did, token = account["did"], account["accessJwt"]
    ask = "com.atproto.server.requestAccountDelete"
    assert (await pds.call(ask, token=token, method="POST")).status_code == 200
    code = inbox.last_code("hank.test@example.com")
    delete = "com.atproto.server.deleteAccount"
    wrong = await pds.call(delete, {"did": did, "password": "wrong", "token": code})
    assert error_of(wrong) == (401, "AuthenticationRequired")
    bad = await pds.call(delete, {"did": did, "password": PASSWORD, "token": "AAAAA-BBBBB"})
    assert error_of(bad) == (400, "InvalidToken")
    done = await pds.call(delete, {"did": did, "password": PASSWORD, "token": code})
    assert done.status_code == 200, done.text
    assert await pds.ctx.accounts.by_did(did) is None
    repo = await pds.call("com.atproto.sync.getLatestCommit", params={"did": did})
    assert error_of(repo) == (400, "RepoNotFound")
    last = [e for e in await events_of(pds, did) if isinstance(e, AccountEvent)][-1]
    assert (last.active, last.status) == (False, "deleted")


async def test_a_mail_server_that_is_down_is_a_502(pds_config: PdsConfig) -> None:
    dead = f"smtp://127.0.0.1:{free_port()}"
    config = dataclasses.replace(pds_config, email_smtp_url=dead)
    async for pds in serve_in_process(config):
        account = await pds.create_account("ivan.test")
        ask = "com.atproto.server.requestAccountDelete"
        response = await pds.call(ask, token=account["accessJwt"], method="POST")
        assert error_of(response) == (502, "UpstreamFailure")


def test_email_cli_sends_a_test_mail(inbox: Inbox, tmp_path: Path, plc_url: str) -> None:
    env = {**os.environ, **pds_env(plc_url), "PDS_DATA_DIRECTORY": str(tmp_path)}
    env |= {"PDS_EMAIL_SMTP_URL": inbox.url, "PDS_EMAIL_FROM_ADDRESS": SENDER}
    command = [sys.executable, "-m", "skyloft", "pds", "test-email", "op@example.com"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "sent a test mail to op@example.com" in done.stdout
    assert inbox.messages[-1]["To"] == "op@example.com"
    assert "Test mail" in inbox.messages[-1]["Subject"]
    env["PDS_EMAIL_SMTP_URL"] = f"smtp://127.0.0.1:{free_port()}"
    failed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert failed.returncode == 1 and "refused the mail" in failed.stderr

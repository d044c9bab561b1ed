"""com.atproto.admin.* behind the admin password: account views, takedowns of accounts,
records and blobs, account edits, invite management; and `skyloft pds admin` on a real PDS."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from atcore.frames import AccountEvent
from atcore.jwt import decode
from pds.config import PdsConfig
from tests.pds.conftest import PASSWORD, Pds, pds_env, serve_in_process
from tests.pds.test_server_accounts import error_of, events_of
from tests.servers import running_service

ADMIN = {"authorization": "Basic " + base64.b64encode(b"admin:admin").decode()}
STATUS = "com.atproto.admin.updateSubjectStatus"
REPO_REF = "com.atproto.admin.defs#repoRef"
TAKEN = {"applied": True, "ref": "abuse"}


async def admin(pds: Pds, nsid: str, body: Any = None, **params: Any) -> Any:
    verb = "GET" if body is None else "POST"
    response = await pds.client.request(
        verb, f"/xrpc/{nsid}", json=body, params=params, headers=ADMIN
    )
    assert response.status_code == 200, response.text
    return response.json() if response.content else None


async def login(pds: Pds, identifier: str, password: str = PASSWORD) -> Any:
    return await pds.call(
        "com.atproto.server.createSession", {"identifier": identifier, "password": password}
    )


async def test_admin_auth_is_required(pds: Pds) -> None:
    nsid = "/xrpc/com.atproto.admin.searchAccounts"
    assert error_of(await pds.client.get(nsid)) == (401, "AuthenticationRequired")
    wrong = {"authorization": "Basic " + base64.b64encode(b"admin:nope").decode()}
    assert (await pds.client.get(nsid, headers=wrong)).status_code == 401
    user = await pds.create_account("user.test")
    as_user = await pds.call("com.atproto.admin.searchAccounts", token=user["accessJwt"])
    assert as_user.status_code == 401


async def test_account_views_and_edits(pds: Pds) -> None:
    a = await pds.create_account("anna.test")
    b = await pds.create_account("ben.test")
    info = await admin(pds, "com.atproto.admin.getAccountInfo", did=a["did"])
    assert (info["handle"], info["email"], info["invitesDisabled"]) == (
        "anna.test",
        "anna.test@example.com",
        False,
    )
    infos = await admin(pds, "com.atproto.admin.getAccountInfos", dids=[b["did"], a["did"]])
    assert [i["handle"] for i in infos["infos"]] == ["ben.test", "anna.test"]
    found = await admin(pds, "com.atproto.admin.searchAccounts", email="ben.")
    assert [x["did"] for x in found["accounts"]] == [b["did"]]
    page = await admin(pds, "com.atproto.admin.searchAccounts", limit=1)
    rest = await admin(pds, "com.atproto.admin.searchAccounts", cursor=page["cursor"])
    assert {x["did"] for x in page["accounts"] + rest["accounts"]} == {a["did"], b["did"]}

    await admin(
        pds, "com.atproto.admin.updateAccountHandle", {"did": a["did"], "handle": "ann.test"}
    )
    assert (await login(pds, "ann.test")).status_code == 200
    # A handle another account holds: a bare InvalidRequest, as the reference PDS we run beside
    # ours (0.4.217) answers.
    taken = await pds.client.post(
        "/xrpc/com.atproto.admin.updateAccountHandle",
        json={"did": b["did"], "handle": "ann.test"},
        headers=ADMIN,
    )
    assert error_of(taken) == (400, "InvalidRequest")
    assert (await pds.ctx.accounts.by_handle("ann.test")) == await pds.ctx.accounts.by_did(a["did"])
    email = {"account": "ann.test", "email": "ann@example.com"}
    await admin(pds, "com.atproto.admin.updateAccountEmail", email)
    assert (await login(pds, "ann@example.com")).status_code == 200
    new = {"did": b["did"], "password": "operator chose this"}
    await admin(pds, "com.atproto.admin.updateAccountPassword", new)
    assert (await login(pds, "ben.test")).status_code == 401
    assert (await login(pds, "ben.test", "operator chose this")).status_code == 200
    await admin(pds, "com.atproto.admin.deleteAccount", {"did": b["did"]})
    assert await pds.ctx.accounts.by_did(b["did"]) is None
    missing = await pds.client.get(
        "/xrpc/com.atproto.admin.getAccountInfo", params={"did": b["did"]}, headers=ADMIN
    )
    assert error_of(missing) == (400, "NotFound")


async def test_account_takedown_and_restore(pds: Pds) -> None:
    account = await pds.create_account("tom.test")
    did = account["did"]
    subject = {"$type": REPO_REF, "did": did}
    done = await admin(
        pds, STATUS, {"subject": subject, "takedown": {"applied": True, "ref": "r1"}}
    )
    assert done["takedown"] == {"applied": True, "ref": "r1"}
    assert error_of(await login(pds, "tom.test")) == (401, "AccountTakedown")
    for nsid in ("com.atproto.sync.getRepo", "com.atproto.sync.getLatestCommit"):
        assert error_of(await pds.call(nsid, params={"did": did})) == (400, "RepoTakendown")
    refresh = "com.atproto.server.refreshSession"
    stale = await pds.call(refresh, token=account["refreshJwt"], method="POST")
    assert error_of(stale) == (401, "AccountTakedown")
    status = await admin(pds, "com.atproto.admin.getSubjectStatus", did=did)
    assert status["takedown"] == {"applied": True, "ref": "r1"}
    listed = await pds.call("com.atproto.sync.listRepos")
    repo = next(r for r in listed.json()["repos"] if r["did"] == did)
    assert (repo["active"], repo["status"]) == (False, "takendown")

    await admin(pds, STATUS, {"subject": subject, "takedown": {"applied": False}})
    assert (await login(pds, "tom.test")).status_code == 200
    got = await pds.call("com.atproto.sync.getLatestCommit", params={"did": did})
    assert got.status_code == 200
    events = [e for e in await events_of(pds, did) if isinstance(e, AccountEvent)]
    assert [(e.active, e.status) for e in events[-2:]] == [(False, "takendown"), (True, None)]


async def test_takendown_login_opens_a_narrow_session(pds: Pds) -> None:
    account = await pds.create_account("tess.test")
    did = account["did"]
    app = await pds.call(
        "com.atproto.server.createAppPassword", {"name": "phone"}, token=account["accessJwt"]
    )
    app_password = app.json()["password"]
    await admin(pds, STATUS, {"subject": {"$type": REPO_REF, "did": did}, "takedown": TAKEN})
    before = len(await events_of(pds, did))
    allow = {"identifier": "tess.test", "password": PASSWORD, "allowTakendown": True}
    session = await pds.call("com.atproto.server.createSession", allow)
    assert session.status_code == 200, session.text
    view = session.json()
    assert (view["did"], view["active"], view["status"]) == (did, False, "takendown")
    token = view["accessJwt"]
    assert decode(token).payload["scope"] == "com.atproto.takendown"
    # An app password never opens one: what it allows includes account management.
    by_app = await pds.call("com.atproto.server.createSession", {**allow, "password": app_password})
    assert error_of(by_app) == (401, "AccountTakedown")

    # No writes, no account or credential changes, not even reading the session.
    post = {"$type": "app.bsky.feed.post", "text": "x", "createdAt": "2024-01-01T00:00:00Z"}
    write = {"repo": did, "collection": "app.bsky.feed.post", "record": post}
    refused = [
        await pds.call("com.atproto.repo.createRecord", write, token=token),
        await pds.call("app.bsky.actor.putPreferences", {"preferences": []}, token=token),
        await pds.call("com.atproto.server.createAppPassword", {"name": "x"}, token=token),
        await pds.call("com.atproto.server.getSession", token=token),
    ]
    assert [error_of(r) for r in refused] == [(400, "InvalidToken")] * 4
    # What a taken-down user may still do: read preferences, get a service token (to appeal
    # or move away), deactivate, which announces nothing new: the status stays takendown.
    prefs = await pds.call("app.bsky.actor.getPreferences", token=token)
    assert prefs.json() == {"preferences": []}
    aud = {"aud": "did:web:mod.example", "lxm": "com.atproto.moderation.createReport"}
    service = await pds.call("com.atproto.server.getServiceAuth", params=aud, token=token)
    assert decode(service.json()["token"]).payload["iss"] == did
    deactivated = await pds.call("com.atproto.server.deactivateAccount", {}, token=token)
    assert deactivated.status_code == 200, deactivated.text
    assert len(await events_of(pds, did)) == before
    stored = await pds.ctx.accounts.by_did(did)
    assert stored is not None and stored.status == "takendown"


async def test_record_and_blob_takedowns(pds: Pds) -> None:
    account = await pds.create_account("rita.test")
    did, token = account["did"], account["accessJwt"]
    blob = await pds.client.post(
        "/xrpc/com.atproto.repo.uploadBlob",
        content=b"\x89PNG\r\n\x1a\n" + b"\0" * 64,
        headers={"authorization": f"Bearer {token}", "content-type": "image/png"},
    )
    ref = blob.json()["blob"]
    record = {
        "$type": "app.bsky.feed.post",
        "text": "look",
        "createdAt": "2024-01-01T00:00:00Z",
        "embed": {"$type": "app.bsky.embed.images", "images": [{"image": ref, "alt": ""}]},
    }
    write = {"repo": did, "collection": "app.bsky.feed.post", "record": record}
    created = (await pds.call("com.atproto.repo.createRecord", write, token=token)).json()
    rkey = created["uri"].rsplit("/", 1)[1]
    plain = {**write, "record": {k: v for k, v in record.items() if k != "embed"}}
    other = (await pds.call("com.atproto.repo.createRecord", plain, token=token)).json()
    get = {"repo": did, "collection": "app.bsky.feed.post", "rkey": rkey}
    cid = ref["ref"]["$link"]
    assert (await pds.call("com.atproto.repo.getRecord", params=get)).status_code == 200
    assert (await pds.call("com.atproto.sync.getBlob", params={"did": did, "cid": cid})).is_success

    strong = {"$type": "com.atproto.repo.strongRef", "uri": created["uri"], "cid": created["cid"]}
    await admin(pds, STATUS, {"subject": strong, "takedown": {"applied": True}})
    hidden = await pds.call("com.atproto.repo.getRecord", params=get)
    assert error_of(hidden) == (400, "RecordNotFound")
    # Hidden from listings and from sync proofs too; the other record still shows.
    listing = {"repo": did, "collection": "app.bsky.feed.post", "limit": 2}
    listed = (await pds.call("com.atproto.repo.listRecords", params=listing)).json()
    assert [r["uri"] for r in listed["records"]] == [other["uri"]]
    proof = {"did": did, "collection": "app.bsky.feed.post", "rkey": rkey}
    assert error_of(await pds.call("com.atproto.sync.getRecord", params=proof)) == (
        400,
        "RecordNotFound",
    )
    status = await admin(pds, "com.atproto.admin.getSubjectStatus", uri=created["uri"])
    assert status["takedown"]["applied"] is True and status["subject"]["cid"] == created["cid"]

    blob_ref = {"$type": "com.atproto.admin.defs#repoBlobRef", "did": did, "cid": cid}
    await admin(pds, STATUS, {"subject": blob_ref, "takedown": {"applied": True, "ref": "b"}})
    gone = await pds.call("com.atproto.sync.getBlob", params={"did": did, "cid": cid})
    assert error_of(gone) == (400, "BlobNotFound")
    await admin(pds, STATUS, {"subject": blob_ref, "takedown": {"applied": False}})
    assert (await pds.call("com.atproto.sync.getBlob", params={"did": did, "cid": cid})).is_success
    # The account itself is untouched by either.
    assert (await login(pds, "rita.test")).status_code == 200


@pytest.fixture
async def invite_pds(tmp_path: Path, plc_url: str) -> AsyncIterator[Pds]:
    env = pds_env(plc_url, PDS_INVITE_REQUIRED="true", PDS_INVITE_INTERVAL="1")
    config = PdsConfig.load(env, data_dir=str(tmp_path / "inv"), port=2583)
    async for running in serve_in_process(config):
        yield running


async def test_invite_management(invite_pds: Pds) -> None:
    pds = invite_pds
    code = (await admin(pds, "com.atproto.server.createInviteCode", {"useCount": 2}))["code"]
    first = await pds.create_account("ida.test", inviteCode=code)
    mine = "com.atproto.server.getAccountInviteCodes"
    earned = (await pds.call(mine, token=first["accessJwt"])).json()["codes"]
    # One code per interval lived, at most five open at once, as the reference.
    assert len(earned) == 5 and {c["createdBy"] for c in earned} == {first["did"]}
    info = await admin(pds, "com.atproto.admin.getAccountInfo", did=first["did"])
    assert info["invitedBy"]["code"] == code and len(info["invites"]) == 5

    disable = {"account": first["did"], "note": "spam"}
    await admin(pds, "com.atproto.admin.disableAccountInvites", disable)
    info = await admin(pds, "com.atproto.admin.getAccountInfo", did=first["did"])
    assert (info["invitesDisabled"], info["inviteNote"]) == (True, "spam")
    await admin(pds, "com.atproto.admin.enableAccountInvites", {"account": first["did"]})

    await admin(pds, "com.atproto.admin.disableInviteCodes", {"codes": [code]})
    body = {"handle": "jack.test", "email": "j@example.com", "password": PASSWORD}
    refused = await pds.call("com.atproto.server.createAccount", {**body, "inviteCode": code})
    assert error_of(refused) == (400, "InvalidInviteCode")
    await admin(pds, "com.atproto.admin.disableInviteCodes", {"accounts": [first["did"]]})
    listed = await pds.call(mine, token=first["accessJwt"], params={"createAvailable": "false"})
    assert listed.json()["codes"] == []
    no_admin = await pds.client.post(
        "/xrpc/com.atproto.admin.disableInviteCodes",
        json={"accounts": ["admin"]},
        headers=ADMIN,
    )
    assert error_of(no_admin) == (400, "InvalidRequest")
    listed = await admin(pds, "com.atproto.admin.getInviteCodes", sort="usage", limit=1)
    assert listed["codes"][0]["code"] == code and "cursor" in listed


def run_admin(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "skyloft", "pds", "admin", "--url", url, *args]
    env = {**os.environ, "PDS_ADMIN_PASSWORD": "admin"}
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)


def login_status(url: str, did: str, password: str) -> int:
    body = {"identifier": did, "password": password}
    return httpx.post(f"{url}/xrpc/com.atproto.server.createSession", json=body).status_code


def test_admin_cli_against_a_running_pds(tmp_path: Path, plc_url: str) -> None:
    env = pds_env(plc_url, PDS_INVITE_REQUIRED="true")
    with running_service("pds", tmp_path / "pds", env=env) as url:
        made = run_admin(url, "account", "create", "kim.test", "kim@example.com")
        assert made.returncode == 0, made.stderr
        header, _, row = made.stdout.splitlines()
        assert header.split() == ["Handle", "DID", "Password"]
        handle, did, password = row.split()
        assert handle == "kim.test" and did.startswith("did:plc:")
        listed = run_admin(url, "account", "list")
        assert listed.stdout.splitlines()[0].split() == ["Handle", "Email", "DID", "Status"]
        assert f"kim.test  kim@example.com  {did}  active" in listed.stdout
        assert login_status(url, did, password) == 200
        assert run_admin(url, "account", "takedown", did, "--ref", "abuse").returncode == 0
        assert f"{did}  takendown" in run_admin(url, "account", "list").stdout
        assert login_status(url, did, password) == 401
        assert run_admin(url, "account", "untakedown", did).returncode == 0
        reset = run_admin(url, "account", "reset-password", did)
        assert reset.returncode == 0 and did in reset.stdout
        new_password = reset.stdout.splitlines()[-1].split()[-1]
        assert login_status(url, did, password) == 401
        assert login_status(url, did, new_password) == 200
        code = run_admin(url, "invite", "create", "--uses", "3")
        assert code.returncode == 0 and code.stdout.strip()
        signup = {"handle": "lee.test", "email": "lee@example.com", "password": PASSWORD}
        signup["inviteCode"] = code.stdout.strip()
        created = httpx.post(f"{url}/xrpc/com.atproto.server.createAccount", json=signup)
        assert created.status_code == 200, created.text
        wrong = subprocess.run(
            [sys.executable, "-m", "skyloft", "pds", "admin", "--url", url, "--password", "x"]
            + ["account", "list"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert wrong.returncode == 1 and "AuthenticationRequired" in wrong.stderr
        assert run_admin(url, "account", "delete", did).returncode == 0
        assert did not in run_admin(url, "account", "list").stdout

"""App passwords and their scoped sessions, and preferences (in-process PDS, real PLC)."""

from __future__ import annotations

import re
from typing import Any

from atcore.jwt import decode
from tests.pds.conftest import PASSWORD, Pds
from tests.pds.test_server_accounts import error_of

LOGIN = "com.atproto.server.createSession"
CREATE_APP = "com.atproto.server.createAppPassword"
LIST_APP = "com.atproto.server.listAppPasswords"
REVOKE_APP = "com.atproto.server.revokeAppPassword"
SERVICE_AUTH = "com.atproto.server.getServiceAuth"


async def login(pds: Pds, identifier: str, password: str) -> dict[str, Any]:
    response = await pds.call(LOGIN, {"identifier": identifier, "password": password})
    assert response.status_code == 200, response.text
    session: dict[str, Any] = response.json()
    return session


def scope_of(token: str) -> str:
    scope: str = decode(token).payload["scope"]
    return scope


async def test_app_password_lifecycle_and_scope(pds: Pds) -> None:
    account = await pds.create_account("alice.test")
    full = account["accessJwt"]
    made = await pds.call(CREATE_APP, {"name": "bot"}, token=full)
    assert made.status_code == 200, made.text
    body = made.json()
    assert re.fullmatch(r"[a-z2-7]{4}(-[a-z2-7]{4}){3}", body["password"])
    assert (body["name"], body["privileged"]) == ("bot", False)
    assert error_of(await pds.call(CREATE_APP, {"name": "bot"}, token=full)) == (
        400,
        "InvalidRequest",
    )

    session = await login(pds, "alice.test", body["password"])
    app_token = session["accessJwt"]
    assert scope_of(app_token) == "com.atproto.appPass"
    assert scope_of(full) == "com.atproto.access"
    listed = (await pds.call(LIST_APP, token=app_token)).json()["passwords"]
    assert [(p["name"], p["privileged"]) for p in listed] == [("bot", False)]
    assert "password" not in listed[0]

    # An app-password session writes records but cannot manage the account.
    record = {"$type": "app.bsky.feed.post", "text": "hi", "createdAt": "2024-01-01T00:00:00Z"}
    write = {"repo": account["did"], "collection": "app.bsky.feed.post", "record": record}
    assert (await pds.call("com.atproto.repo.createRecord", write, token=app_token)).is_success
    refused: list[tuple[str, dict[str, Any] | None]] = [
        (CREATE_APP, {"name": "other"}),
        (REVOKE_APP, {"name": "bot"}),
        ("com.atproto.server.requestAccountDelete", None),
        ("com.atproto.server.requestEmailUpdate", None),
        ("com.atproto.server.updateEmail", {"email": "new@example.com"}),
        ("com.atproto.server.deactivateAccount", {}),
        ("com.atproto.identity.requestPlcOperationSignature", None),
        ("com.atproto.identity.signPlcOperation", {}),
        ("com.atproto.identity.submitPlcOperation", {"operation": {}}),
        ("com.atproto.server.activateAccount", None),
        ("com.atproto.server.requestEmailConfirmation", None),
        ("com.atproto.server.confirmEmail", {"email": "a@example.com", "token": "x"}),
        ("com.atproto.repo.importRepo", None),
    ]
    for nsid, input_ in refused:
        response = await pds.call(nsid, input_, token=app_token, method="POST")
        assert error_of(response) == (400, "InvalidToken"), nsid
    invites = await pds.call("com.atproto.server.getAccountInviteCodes", token=app_token)
    assert error_of(invites) == (400, "InvalidToken")

    # Refreshing keeps the narrow scope; revoking ends the password and its sessions.
    refresh = "com.atproto.server.refreshSession"
    refreshed = await pds.call(refresh, token=session["refreshJwt"], method="POST")
    assert scope_of(refreshed.json()["accessJwt"]) == "com.atproto.appPass"
    assert (await pds.call(REVOKE_APP, {"name": "bot"}, token=full)).status_code == 200
    gone = await pds.call(LOGIN, {"identifier": "alice.test", "password": body["password"]})
    assert error_of(gone) == (401, "AuthenticationRequired")
    again = await pds.call(refresh, token=refreshed.json()["refreshJwt"], method="POST")
    assert error_of(again) == (400, "ExpiredToken")
    assert (await pds.call(LIST_APP, token=full)).json()["passwords"] == []
    # The account password still works.
    assert scope_of((await login(pds, "alice.test", PASSWORD))["accessJwt"]) == "com.atproto.access"


async def test_privileged_app_passwords_and_service_tokens(pds: Pds) -> None:
    account = await pds.create_account("bob.test")
    full = account["accessJwt"]
    plain = (await pds.call(CREATE_APP, {"name": "plain"}, token=full)).json()["password"]
    priv = await pds.call(CREATE_APP, {"name": "dm", "privileged": True}, token=full)
    assert priv.json()["privileged"] is True
    plain_token = (await login(pds, "bob.test", plain))["accessJwt"]
    priv_token = (await login(pds, "bob.test", priv.json()["password"]))["accessJwt"]
    assert scope_of(priv_token) == "com.atproto.appPassPrivileged"

    chat = {"aud": "did:web:chat.example.com", "lxm": "chat.bsky.convo.sendMessage"}
    refused = await pds.call(SERVICE_AUTH, params=chat, token=plain_token)
    assert refused.status_code == 400 and refused.json() == {
        "error": "InvalidRequest",
        "message": "insufficient access to request a service auth token for the following "
        "method: chat.bsky.convo.sendMessage",
    }
    assert (await pds.call(SERVICE_AUTH, params=chat, token=priv_token)).status_code == 200
    feed = {"aud": "did:web:feed.example.com", "lxm": "app.bsky.feed.getFeedSkeleton"}
    assert (await pds.call(SERVICE_AUTH, params=feed, token=plain_token)).status_code == 200
    # Account management is never delegated, whoever asks.
    protected = {"aud": "did:web:x.example.com", "lxm": "com.atproto.server.updateEmail"}
    refused = await pds.call(SERVICE_AUTH, params=protected, token=full)
    assert refused.status_code == 400 and refused.json() == {
        "error": "InvalidRequest",
        "message": "cannot request a service auth token for the following protected method: "
        "com.atproto.server.updateEmail",
    }


PERSONAL = {"$type": "app.bsky.actor.defs#personalDetailsPref", "birthDate": "1990-01-01T00:00:00Z"}
ADULT = {"$type": "app.bsky.actor.defs#adultContentPref", "enabled": True}
FEEDS = {"$type": "app.bsky.actor.defs#savedFeedsPrefV2", "items": []}


async def test_preferences_round_trip_and_scope(pds: Pds) -> None:
    account = await pds.create_account("carol.test")
    full = account["accessJwt"]
    get, put = "app.bsky.actor.getPreferences", "app.bsky.actor.putPreferences"
    assert (await pds.call(get, token=full)).json() == {"preferences": []}
    stored = await pds.call(put, {"preferences": [ADULT, PERSONAL]}, token=full)
    assert stored.status_code == 200, stored.text
    assert (await pds.call(get, token=full)).json()["preferences"] == [ADULT, PERSONAL]

    foreign = {"$type": "com.example.pref", "x": 1}
    bad = await pds.call(put, {"preferences": [foreign]}, token=full)
    assert error_of(bad) == (400, "InvalidRequest")

    # A plain app password neither sees nor sets nor erases the personal details.
    password = (await pds.call(CREATE_APP, {"name": "app"}, token=full)).json()["password"]
    app_token = (await login(pds, "carol.test", password))["accessJwt"]
    assert (await pds.call(get, token=app_token)).json()["preferences"] == [ADULT]
    refused = await pds.call(put, {"preferences": [PERSONAL]}, token=app_token)
    assert error_of(refused) == (400, "InvalidRequest")
    assert (await pds.call(put, {"preferences": [FEEDS]}, token=app_token)).status_code == 200
    assert (await pds.call(get, token=full)).json()["preferences"] == [FEEDS, PERSONAL]
    # A privileged app password neither: only the account password's session (the reference).
    body = {"name": "dms", "privileged": True}
    password = (await pds.call(CREATE_APP, body, token=full)).json()["password"]
    privileged = (await login(pds, "carol.test", password))["accessJwt"]
    assert (await pds.call(get, token=privileged)).json()["preferences"] == [FEEDS]
    refused = await pds.call(put, {"preferences": [ADULT, PERSONAL]}, token=privileged)
    assert refused.status_code == 400 and refused.json() == {
        "error": "InvalidRequest",
        "message": f"Do not have authorization to set preferences: {PERSONAL['$type']}",
    }
    assert (await pds.call(put, {"preferences": [ADULT]}, token=privileged)).status_code == 200
    assert (await pds.call(get, token=full)).json()["preferences"] == [ADULT, PERSONAL]
    other = await pds.create_account("dave.test")
    assert (await pds.call(get, token=other["accessJwt"])).json()["preferences"] == []

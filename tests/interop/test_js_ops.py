"""@atproto/api against `skyloft pds serve` with invites required and an appview stand-in:
invite codes, app passwords and what they may not do, preferences, proxied calls with
verified service auth, and a taken-down account's login (tests/js/ops_client.mjs)."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from tests.interop.conftest import PASSWORD, run_node
from tests.pds.appview_standin import appview_standin
from tests.pds.conftest import pds_env
from tests.servers import running_service

pytestmark = pytest.mark.integration

ADMIN_PASSWORD = "interop-admin"
PREFERENCES = [
    {"$type": "app.bsky.actor.defs#adultContentPref", "enabled": True},
    {
        "$type": "app.bsky.actor.defs#contentLabelPref",
        "label": "graphic-media",
        "visibility": "warn",
    },
    {"$type": "app.bsky.actor.defs#savedFeedsPrefV2", "items": []},
]


def error(status: int, name: str, message: str, typed: bool = False) -> dict[str, object]:
    """A step's error as ops_client.mjs reports an XRPC error from the agent; `typed` when the
    method's lexicon names the error, so that the agent raises its own class for it."""
    plain = {"name": "XRPCError", "message": message, "status": status, "error": name}
    if not typed:
        return {"error": {**plain, "cause": None}}
    return {"error": {**plain, "name": f"{name}Error", "cause": {**plain, "cause": None}}}


def test_atproto_api_invites_app_passwords_preferences_proxy_takedown(
    tmp_path: Path, plc_url: str
) -> None:
    with appview_standin(plc_url) as standin:
        env = pds_env(
            plc_url,
            PDS_INVITE_REQUIRED="true",
            PDS_ADMIN_PASSWORD=ADMIN_PASSWORD,
            PDS_BSKY_APP_VIEW_URL=standin.url,
            PDS_BSKY_APP_VIEW_DID=standin.did,
        )
        with running_service("pds", tmp_path / "pds", env=env) as url:
            invite = httpx.post(
                f"{url}/xrpc/com.atproto.server.createInviteCode",
                json={"useCount": 1},
                auth=("admin", ADMIN_PASSWORD),
            ).json()["code"]
            steps = run_node(
                "ops_client.mjs",
                {
                    "service": url,
                    "handle": "js-ops.test",
                    "email": "js-ops@example.com",
                    "password": PASSWORD,
                    "inviteCode": invite,
                    "adminPassword": ADMIN_PASSWORD,
                },
            )
            proxied = [seen for seen in standin.seen if seen.nsid == "app.bsky.actor.getProfile"]

    did = steps["createAccount"]["ok"]["did"]
    app_password = steps["createAppPassword"]["ok"].pop("password")
    assert re.fullmatch(r"[a-z2-7]{4}(-[a-z2-7]{4}){3}", app_password)
    bad_scope = error(400, "InvalidToken", "Bad token scope")
    assert steps == {
        "describeServer": {"ok": {"inviteCodeRequired": True}},
        "createAccountWithoutInvite": error(
            400, "InvalidInviteCode", "No invite code provided", typed=True
        ),
        "createAccount": {"ok": {"did": did, "handle": "js-ops.test"}},
        "createAppPassword": {"ok": {"name": "js client", "privileged": False}},
        "listAppPasswords": {"ok": [{"name": "js client", "privileged": False}]},
        "loginWithAppPassword": {"ok": {"did": did, "handle": "js-ops.test", "active": True}},
        "appPasswordWrites": {"ok": {"collection": "app.bsky.feed.post"}},
        # An app-password session may not manage the account's credentials or email.
        "appPasswordCreateAppPassword": bad_scope,
        "appPasswordUpdateEmail": error(400, "InvalidToken", "Bad token scope", typed=True),
        "appPasswordRevokeAppPassword": bad_scope,
        "putPreferences": {"ok": "stored"},
        "getPreferences": {"ok": PREFERENCES},
        "parsedPreferences": {"ok": {"adultContentEnabled": True, "graphicMedia": "warn"}},
        "getProfile": {"ok": {"did": did, "handle": "js-ops.test", "displayName": "Stand-in"}},
        "appPasswordGetProfile": {"ok": {"did": did, "displayName": "Stand-in"}},
        "revokeAppPassword": {"ok": []},
        "refreshRevokedSession": error(400, "ExpiredToken", "Token has been revoked", typed=True),
        "sessionDroppedAfterRevoke": {"ok": True},
        "loginWithRevokedAppPassword": error(
            401, "AuthenticationRequired", "Invalid identifier or password"
        ),
        "takedown": {"ok": 200},
        "loginTakendown": error(401, "AccountTakedown", "Account has been taken down", typed=True),
        "loginAllowTakendown": {"ok": {"did": did, "active": False, "status": "takendown"}},
        "takendownWrites": bad_scope,
        "takendownGetPreferences": {"ok": 3},
    }
    # Both sessions' profile calls reached the stand-in with a service-auth JWT it verified
    # against the account's DID document: issuer, audience, method and expiry.
    assert len(proxied) == 2
    for seen in proxied:
        assert seen.verified and seen.claims is not None
        assert (seen.claims["iss"], seen.claims["aud"]) == (did, standin.did)
        assert seen.claims["lxm"] == "app.bsky.actor.getProfile"

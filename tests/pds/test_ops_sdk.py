"""The PyPI `atproto` SDK against `skyloft pds serve` with invites required and an appview
stand-in: invite codes, app passwords, preferences and proxied calls (independent client)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.pds.appview_standin import appview_standin
from tests.pds.conftest import PASSWORD, pds_env
from tests.servers import running_service

pytestmark = pytest.mark.integration
atproto = pytest.importorskip("atproto")


def test_sdk_with_invites_app_passwords_preferences_and_proxy(tmp_path: Path, plc_url: str) -> None:
    from atproto_client.exceptions import BadRequestError  # type: ignore[import-untyped]
    from atproto_client.request import Request  # type: ignore[import-untyped]

    models = atproto.models
    request = Request()
    with appview_standin(plc_url) as standin:
        env = pds_env(
            plc_url,
            PDS_INVITE_REQUIRED="true",
            PDS_BSKY_APP_VIEW_URL=standin.url,
            PDS_BSKY_APP_VIEW_DID=standin.did,
        )
        try:
            with running_service("pds", tmp_path / "pds", env=env) as url:
                invite = httpx.post(
                    f"{url}/xrpc/com.atproto.server.createInviteCode",
                    json={"useCount": 1},
                    auth=("admin", "admin"),
                ).json()["code"]
                client = atproto.Client(base_url=url, request=request)
                server = client.com.atproto.server
                assert server.describe_server().invite_code_required is True
                data = models.ComAtprotoServerCreateAccount.Data
                body = {"handle": "sdk-ops.test", "email": "ops@example.com", "password": PASSWORD}
                with pytest.raises(BadRequestError):
                    server.create_account(data(**body))
                created = server.create_account(data(**body, invite_code=invite))

                # Login fetches the profile through the proxy: the stand-in answers it.
                profile = client.login("sdk-ops.test", PASSWORD)
                assert profile.did == created.did and profile.display_name == "Stand-in"
                assert standin.seen[-1].verified
                app = client.com.atproto.server.create_app_password(
                    models.ComAtprotoServerCreateAppPassword.Data(name="sdk")
                )
                listed = client.com.atproto.server.list_app_passwords()
                assert [p.name for p in listed.passwords] == ["sdk"]

                bot = atproto.Client(base_url=url, request=request)
                bot.login("sdk-ops.test", app.password)
                with pytest.raises(BadRequestError):
                    bot.com.atproto.server.create_app_password(
                        models.ComAtprotoServerCreateAppPassword.Data(name="more")
                    )
                post = bot.send_post("written with an app password")
                assert post.uri.startswith(f"at://{created.did}/app.bsky.feed.post/")

                prefs = [
                    models.AppBskyActorDefs.AdultContentPref(enabled=True),
                    models.AppBskyActorDefs.SavedFeedsPrefV2(items=[]),
                ]
                bot.app.bsky.actor.put_preferences(
                    models.AppBskyActorPutPreferences.Data(preferences=prefs)
                )
                got = client.app.bsky.actor.get_preferences().preferences
                assert [p.py_type for p in got] == [
                    "app.bsky.actor.defs#adultContentPref",
                    "app.bsky.actor.defs#savedFeedsPrefV2",
                ]
                assert got[0].enabled is True

                again = bot.app.bsky.actor.get_profile(
                    models.AppBskyActorGetProfile.Params(actor=created.did)
                )
                assert again.did == created.did
                seen = standin.seen[-1]
                assert seen.verified and seen.claims is not None
                assert seen.claims["lxm"] == "app.bsky.actor.getProfile"
                assert seen.claims["iss"] == created.did
        finally:
            request.close()

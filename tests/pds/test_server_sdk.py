"""`skyloft pds serve` as a real process, driven by the PyPI `atproto` SDK (independent client)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.pds.conftest import PASSWORD, pds_env
from tests.servers import running_service

pytestmark = pytest.mark.integration
atproto = pytest.importorskip("atproto")


def test_sdk_creates_an_account_and_logs_in(tmp_path: Path, plc_url: str) -> None:
    from atproto_client.exceptions import UnauthorizedError  # type: ignore[import-untyped]
    from atproto_client.request import Request  # type: ignore[import-untyped]

    models = atproto.models
    request = Request()  # one HTTP connection pool for every client here, closed at the end
    try:
        with running_service("pds", tmp_path / "pds", env=pds_env(plc_url)) as url:
            port = url.rsplit(":", 1)[1]
            client = atproto.Client(base_url=url, request=request)
            server = client.com.atproto.server
            described = server.describe_server()
            assert described.did == "did:web:localhost"
            assert described.available_user_domains == [".test"]

            created = server.create_account(
                models.ComAtprotoServerCreateAccount.Data(
                    handle="sdk-user.test", email="sdk@example.com", password=PASSWORD
                )
            )
            assert created.did.startswith("did:plc:") and created.handle == "sdk-user.test"

            client = atproto.Client(base_url=url, request=request)
            client.login("sdk-user.test", PASSWORD, fetch_bsky_profile=False)
            # The SDK moved to the endpoint our DID document names: the dev-mode public URL.
            assert client._base_url == f"http://localhost:{port}/xrpc"
            session = client.com.atproto.server.get_session()
            assert (session.did, session.handle, session.active) == (
                created.did,
                "sdk-user.test",
                True,
            )
            refreshed = client._refresh_and_set_session()
            assert refreshed.did == created.did
            assert client.com.atproto.server.get_session().did == created.did

            resolved = client.com.atproto.identity.resolve_handle(
                models.ComAtprotoIdentityResolveHandle.Params(handle="sdk-user.test")
            )
            assert resolved.did == created.did

            stranger = atproto.Client(base_url=url, request=request)
            with pytest.raises(UnauthorizedError):
                stranger.login("sdk-user.test", "wrong", fetch_bsky_profile=False)
    finally:
        request.close()

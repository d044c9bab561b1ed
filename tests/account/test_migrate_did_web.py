"""`skyloft account migrate` of a did:web account: the command prints the DID document to
publish and pauses; once the test's web server publishes it, a re-run completes (spec-did.md,
did:web; spec-account.md, "PDS Account Migration")."""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from atcore.identity.plc_data import did_document
from atcore.jwt import encode_es
from atcore.keys import generate_k256
from tests.account.conftest import NOW, Client, Network
from tests.account.scenario import MIGRATE_ENV, NEW_PASSWORD, migrate_command
from tests.pds.conftest import PASSWORD
from tests.servers import serving_in_loop

pytestmark = pytest.mark.integration


def web_host(published: dict[str, Any]) -> Starlette:
    """Serves whatever document `published["doc"]` holds, as a did:web host does."""

    async def did_json(request: Request) -> JSONResponse:
        return JSONResponse(published["doc"])

    return Starlette(routes=[Route("/.well-known/did.json", did_json)])


def localhost(url: str | httpx.URL) -> str:
    return str(httpx.URL(str(url)).copy_with(host="localhost")).rstrip("/")


def run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, env=MIGRATE_ENV, timeout=120)


async def test_migrate_a_did_web_account(
    tmp_path: Path, plc_url: str, servers: Network, clients: tuple[Client, Client]
) -> None:
    old, new = clients
    published: dict[str, Any] = {}
    async with serving_in_loop(web_host(published)) as web_url:
        did = f"did:web:localhost%3A{httpx.URL(web_url).port}"
        key = generate_k256()
        published["doc"] = did_document(
            did,
            {
                "alsoKnownAs": ["at://wendy.test"],
                "verificationMethods": {"atproto": key.public_key().did_key()},
                "services": {
                    "atproto_pds": {
                        "type": "AtprotoPersonalDataServer",
                        "endpoint": localhost(servers.old),
                    }
                },
            },
        )
        # The account starts on the old PDS, which the published document then names.
        now = int(time.time())
        claims = {
            "iss": did,
            "aud": "did:web:localhost",
            "lxm": "com.atproto.server.createAccount",
            "iat": now,
            "exp": now + 60,
            "jti": secrets.token_hex(8),
        }
        body = {"did": did, "handle": "wendy.test", "email": "w@example.com", "password": PASSWORD}
        made = await old.http.post(
            "/xrpc/com.atproto.server.createAccount",
            json=body,
            headers={"authorization": f"Bearer {encode_es(claims, key)}"},
        )
        assert made.status_code == 200, made.text
        wendy = Client(old.http, did, made.json()["accessJwt"])
        creds = await wendy.call("com.atproto.identity.getRecommendedDidCredentials")
        published["doc"] = did_document(did, creds)
        await wendy.post("com.atproto.server.activateAccount")
        await wendy.create({"$type": "app.bsky.feed.post", "text": "web", "createdAt": NOW})

        state = tmp_path / "wendy.json"
        command = migrate_command(did, servers.new, plc_url, state)
        paused = await asyncio.to_thread(run, command)
        assert paused.returncode == 3, paused.stderr
        text = paused.stderr
        start = text.index("{", text.index("publish this document at"))
        doc, _ = json.JSONDecoder().raw_decode(text[start:])
        assert doc["service"][0]["serviceEndpoint"] == localhost(servers.new)
        assert json.loads(state.read_text())["done"] == ["account", "repo", "blobs", "preferences"]

        published["doc"] = doc
        done = await asyncio.to_thread(run, command)
        assert done.returncode == 0, done.stderr
        assert "migration complete" in done.stderr
        login = {"identifier": did, "password": NEW_PASSWORD}
        moved = await new.call("com.atproto.server.createSession", login)
        assert moved["active"] is True
        mover = Client(new.http, did, moved["accessJwt"])
        status = await mover.call("com.atproto.server.checkAccountStatus")
        assert status["activated"] and status["validDid"] and status["indexedRecords"] == 1

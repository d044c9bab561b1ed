"""The migration's session: retries on rate limits and passing failures, a fresh login when the
access token expired, and no retry of a request the server refused for good."""

from __future__ import annotations

from collections import Counter

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from atcore.xrpc.client import XrpcClientError
from skyloft.account.session import Session
from tests.servers import serving_in_loop


def flaky_server() -> tuple[Starlette, Counter[str]]:
    """A server that answers each method its own way, counting the calls."""
    calls: Counter[str] = Counter()

    async def create_session(request: Request) -> JSONResponse:
        calls["login"] += 1
        n = calls["login"]
        return JSONResponse({"did": "did:plc:x", "accessJwt": f"a{n}", "refreshJwt": "r"})

    async def limited(request: Request) -> JSONResponse:
        calls["limited"] += 1
        if calls["limited"] < 3:
            wait = {"retry-after": "1"} if "slow" in request.query_params else {}
            return JSONResponse({"error": "RateLimitExceeded"}, status_code=429, headers=wait)
        return JSONResponse({"ok": True})

    async def expiring(request: Request) -> JSONResponse:
        calls["expiring"] += 1
        if request.headers.get("authorization") == "Bearer a1":
            return JSONResponse({"error": "ExpiredToken", "message": "jwt expired"}, 400)
        return JSONResponse({"token": request.headers["authorization"]})

    async def refused(request: Request) -> JSONResponse:
        calls["refused"] += 1
        return JSONResponse({"error": "InvalidRequest", "message": "no"}, status_code=400)

    routes = [
        Route("/xrpc/com.atproto.server.createSession", create_session, methods=["POST"]),
        Route("/xrpc/test.limited", limited),
        Route("/xrpc/test.expiring", expiring),
        Route("/xrpc/test.refused", refused),
    ]
    return Starlette(routes=routes), calls


async def test_retries_and_fresh_login() -> None:
    app, calls = flaky_server()
    async with serving_in_loop(app) as url, httpx.AsyncClient() as http:
        session = Session(url, http, first_delay=0.01)
        await session.login("did:plc:x", "secret")
        assert await session.query("test.limited") == {"ok": True}
        assert calls["limited"] == 3
        assert await session.query("test.expiring") == {"token": "Bearer a2"}
        assert (calls["login"], calls["expiring"]) == (2, 2)
        with pytest.raises(XrpcClientError) as refused:
            await session.query("test.refused")
        assert (refused.value.status, refused.value.error) == (400, "InvalidRequest")
        assert calls["refused"] == 1


async def test_waits_as_long_as_retry_after_asks() -> None:
    app, calls = flaky_server()
    notices: list[str] = []
    async with serving_in_loop(app) as url, httpx.AsyncClient() as http:
        session = Session(url, http, first_delay=0.01, notice=notices.append)
        assert await session.query("test.limited", {"slow": True}) == {"ok": True}
    # The first wait is the server's second, the next doubles it as back-off does.
    waits = [notice.rsplit(";", 1)[1] for notice in notices]
    assert waits == [" retrying in 1 s", " retrying in 2 s"]


async def test_gives_up_after_its_attempts() -> None:
    app, calls = flaky_server()
    async with serving_in_loop(app) as url, httpx.AsyncClient() as http:
        session = Session(url, http, attempts=2, first_delay=0.01)
        with pytest.raises(XrpcClientError) as limited:
            await session.query("test.limited")
        assert limited.value.status == 429
        assert calls["limited"] == 2

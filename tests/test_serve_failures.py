"""skyloft.serve puts atcore.xrpc.failures.FailureMiddleware in front of every service's app."""

from __future__ import annotations

import logging

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from atcore.xrpc.cors import cors_middleware
from atcore.xrpc.failures import FailureMiddleware
from skyloft.serve import with_failure_middleware


async def broken(request: Request) -> Response:
    raise RuntimeError("no handler for this")


async def get(app: object, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://x.test") as client:
        return await client.get(path, headers={"origin": "https://app.example"})


async def test_a_starlette_app_answers_escaped_exceptions_in_json(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = Starlette(routes=[Route("/broken", broken)], middleware=[cors_middleware()])
    assert with_failure_middleware(app) is app
    with caplog.at_level(logging.ERROR):
        response = await get(app, "/broken")
    assert response.status_code == 500
    assert response.json()["message"].startswith("Internal Server Error, request id ")
    assert response.headers["access-control-allow-origin"] == "*"  # inside CORS
    (record,) = caplog.records  # Starlette's own handler never saw it
    assert record.exc_info is None and "RuntimeError: no handler for this" in record.getMessage()


async def test_any_other_asgi_app_is_wrapped(caplog: pytest.LogCaptureFixture) -> None:
    async def bare(scope: Scope, receive: Receive, send: Send) -> None:
        raise ValueError("bare app")

    wrapped = with_failure_middleware(bare)
    assert isinstance(wrapped, FailureMiddleware)
    with caplog.at_level(logging.ERROR):
        response = await get(wrapped, "/anything")
    assert response.status_code == 500 and response.json()["error"] == "InternalServerError"
    assert len(caplog.records) == 1

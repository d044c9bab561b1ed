"""runtime.serve puts atcore.xrpc.failures.FailureMiddleware in front of every service's app."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from atcore.xrpc.cors import cors_middleware
from atcore.xrpc.failures import FailureMiddleware
from runtime.serve import with_failure_middleware
from skyloft.services import ServiceProcess
from tests.pds.conftest import pds_env
from tests.servers import running_service


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


@pytest.mark.integration
def test_a_served_pds_logs_one_line_per_failure_and_no_traceback(tmp_path: Path) -> None:
    """Through `skyloft pds serve` itself: a failure the PDS cannot help (its blob directory
    has become a file) answers 500 naming a request id, and the log gets exactly one line for
    each failing request, naming that id, and no traceback."""
    with running_service("plc", tmp_path / "plc") as plc_url:
        data = tmp_path / "pds"
        pds = ServiceProcess("pds", data, env=pds_env(plc_url))
        try:
            with httpx.Client(base_url=pds.url, timeout=30) as http:
                body = {"handle": "tess.test", "email": "t@example.com", "password": "pw-123456"}
                session = http.post("/xrpc/com.atproto.server.createAccount", json=body)
                assert session.status_code == 200, session.text
                (data / "blocks").mkdir(exist_ok=True)
                (data / "blocks" / "tmp").write_bytes(b"not a directory")
                headers = {
                    "authorization": f"Bearer {session.json()['accessJwt']}",
                    "content-type": "image/png",
                }
                ids = []
                for _ in range(2):
                    r = http.post(
                        "/xrpc/com.atproto.repo.uploadBlob", content=b"x", headers=headers
                    )
                    assert r.status_code == 500 and r.json()["error"] == "InternalServerError"
                    ids.append(r.json()["message"].rsplit(" ", 1)[1])
        finally:
            assert pds.stop() == 0
        log = pds.log_path.read_text()
    assert "Traceback" not in log
    for rid in ids:
        (line,) = [line for line in log.splitlines() if rid in line]
        # The exception's type and the place it was raised, not a traceback.
        assert "uploadBlob" in line and "NotADirectoryError" in line and " at " in line

"""atcore.xrpc.client over both HTTP stacks it runs on (aiohttp and httpx), against a real
server on 127.0.0.1: answers, the server's error names, size and time limits, redirects."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route

from atcore.xrpc.client import HttpClient, XrpcClient, XrpcClientError, http_session
from atcore.xrpc.errors import UpstreamFailure, UpstreamTimeout
from tests.servers import serving_in_loop

pytestmark = pytest.mark.integration


async def echo(request: Request) -> Response:
    if request.method == "POST":
        body = await request.body()
        kind = request.headers.get("content-type", "")
        return JSONResponse({"size": len(body), "type": kind, "sha": body[:8].hex()})
    params = [[k, v] for k, v in request.query_params.multi_items()]
    auth = request.headers.get("authorization")
    topics = request.headers.get("x-bsky-topics")
    body = {"params": params, "auth": auth, "topics": topics}
    return JSONResponse(body, headers={"Content-Language": "en"})


async def blob(_: Request) -> Response:
    return Response(b"\x89PNG" + bytes(1000), media_type="image/png; charset=binary")


async def refused(_: Request) -> Response:
    body = {"error": "RecordNotFound", "message": "no such record"}
    return JSONResponse(body, 400, headers={"server": "atproto-relay"})


async def limited(_: Request) -> Response:
    body = {"error": "RateLimitExceeded", "message": "slow down"}
    return JSONResponse(body, 429, headers={"retry-after": "7"})


async def proxy_page(_: Request) -> Response:
    return PlainTextResponse("<html>bad gateway</html>", 502)


async def long_error(_: Request) -> Response:
    """An error body far past what an error needs: only its start is read."""

    async def body() -> AsyncIterator[bytes]:
        yield b'{"error": "Huge", "message": "'
        for _ in range(1000):
            yield b"x" * 65536
        yield b'"}'

    return StreamingResponse(body(), 500, media_type="application/json")


async def slow(_: Request) -> Response:
    await asyncio.sleep(5)
    return JSONResponse({})


async def moved(_: Request) -> Response:
    return RedirectResponse("/xrpc/com.example.echo", 302)


async def not_json(_: Request) -> Response:
    return Response(b"{not json", media_type="application/json")


APP = Starlette(
    routes=[
        Route("/xrpc/com.example.echo", echo, methods=["GET", "POST"]),
        Route("/xrpc/com.example.blob", blob),
        Route("/xrpc/com.example.refused", refused),
        Route("/xrpc/com.example.limited", limited),
        Route("/xrpc/com.example.proxyPage", proxy_page),
        Route("/xrpc/com.example.slow", slow),
        Route("/xrpc/com.example.longError", long_error),
        Route("/xrpc/com.example.moved", moved),
        Route("/xrpc/com.example.notJson", not_json),
    ]
)

STACKS: dict[str, Callable[[], AbstractAsyncContextManager[Any]]] = {
    "aiohttp": http_session,
    "httpx": lambda: httpx.AsyncClient(trust_env=False),
}


@pytest.fixture(params=sorted(STACKS))
async def http(request: pytest.FixtureRequest) -> AsyncIterator[HttpClient]:
    async with STACKS[request.param]() as client:
        yield client


@pytest.fixture
async def url() -> AsyncIterator[str]:
    async with serving_in_loop(APP) as served:
        yield served


async def test_queries_and_procedures(url: str, http: HttpClient) -> None:
    client = XrpcClient(url + "/", http, auth_header="Bearer t")
    got = await client.query("com.example.echo", {"a": ["x y", "é"], "b": True, "c": 3, "d": None})
    assert got == {
        "params": [["a", "x y"], ["a", "é"], ["b", "true"], ["c", "3"]],
        "auth": "Bearer t",
        "topics": None,
    }
    assert await client.query_bytes("com.example.blob") == (b"\x89PNG" + bytes(1000), "image/png")
    answer = await client.query_answer("com.example.echo", headers={"X-Bsky-Topics": "t1"})
    assert (answer.status, answer.mime, answer.headers["content-language"]) == (
        200,
        "application/json",
        "en",
    )
    assert json.loads(answer.body)["topics"] == "t1"
    posted = await client.procedure("com.example.echo", b"\x00\x01raw", encoding="image/webp")
    assert posted == {"size": 5, "type": "image/webp", "sha": "0001726177"}
    sent = await client.procedure("com.example.echo", {"k": b"\x01"})
    assert sent["type"] == "application/json" and sent["size"] == len('{"k":{"$bytes":"AQ"}}')


async def test_errors_carry_the_servers_names(url: str, http: HttpClient) -> None:
    client = XrpcClient(url, http)
    with pytest.raises(XrpcClientError) as refused:
        await client.query("com.example.refused")
    assert (refused.value.status, refused.value.error) == (400, "RecordNotFound")
    assert refused.value.message == "no such record"
    assert refused.value.upstream().status == 400
    assert refused.value.upstream().error == "RecordNotFound"
    assert refused.value.headers["server"].startswith("atproto-relay")
    with pytest.raises(XrpcClientError) as limited:
        await client.query("com.example.limited")
    assert (limited.value.error, limited.value.retry_after) == ("RateLimitExceeded", "7")
    with pytest.raises(XrpcClientError) as page:
        await client.query("com.example.proxyPage")
    assert (page.value.status, page.value.error, page.value.message) == (
        502,
        "UpstreamFailure",
        None,
    )
    assert isinstance(page.value.upstream(), UpstreamFailure)
    with pytest.raises(XrpcClientError) as broken:
        await client.query("com.example.notJson")
    assert (broken.value.status, broken.value.error) == (200, "InvalidResponse")
    with pytest.raises(XrpcClientError) as redirected:
        await client.query("com.example.moved")
    assert redirected.value.status == 302, "redirects are not followed"


async def test_size_and_time_limits(url: str, http: HttpClient) -> None:
    small = XrpcClient(url, http, max_response=1000)
    with pytest.raises(XrpcClientError, match="larger than 1000 bytes"):
        await small.query_bytes("com.example.blob")
    hasty = XrpcClient(url, http, timeout=0.2)
    with pytest.raises(XrpcClientError) as late:
        await hasty.query("com.example.slow")
    assert (late.value.status, late.value.error) == (0, "UpstreamTimeout")
    assert isinstance(late.value.upstream(), UpstreamTimeout)
    if isinstance(http, httpx.AsyncClient):
        async with httpx.AsyncClient(timeout=0.2, trust_env=False) as impatient:
            with pytest.raises(XrpcClientError) as own_limit:
                await XrpcClient(url, impatient).query("com.example.slow")
            assert (own_limit.value.status, own_limit.value.error) == (0, "UpstreamTimeout")
    gone = XrpcClient("http://127.0.0.1:9", http)
    with pytest.raises(XrpcClientError) as unreachable:
        await gone.query("com.example.echo")
    assert unreachable.value.status == 0
    assert unreachable.value.upstream().status == 502


async def test_streamed_answers(url: str, http: HttpClient) -> None:
    client = XrpcClient(url, http)
    async with client.query_stream("com.example.blob") as stream:
        assert (stream.status, stream.mime) == (200, "image/png")
        body = b"".join([chunk async for chunk in stream.chunks])
    assert body == b"\x89PNG" + bytes(1000)
    with pytest.raises(XrpcClientError) as refused:
        async with client.query_stream("com.example.refused"):
            pass
    assert (refused.value.status, refused.value.error) == (400, "RecordNotFound")
    with pytest.raises(XrpcClientError) as long_error:
        async with client.query_stream("com.example.longError"):
            pass
    assert (long_error.value.status, long_error.value.error) == (500, "InternalServerError")
    small = XrpcClient(url, http, max_response=500)
    with pytest.raises(XrpcClientError, match="larger than 500 bytes"):
        async with small.query_stream("com.example.blob") as stream:
            async for _ in stream.chunks:
                pass
    hasty = XrpcClient(url, http, timeout=0.2)
    with pytest.raises(XrpcClientError) as late:
        async with hasty.query_stream("com.example.blob") as stream:
            await asyncio.sleep(1)  # the limit covers the caller's reading too
    assert (late.value.status, late.value.error) == (0, "UpstreamTimeout")


def test_error_text() -> None:
    error = XrpcClientError(400, "InvalidRequest", "bad cursor")
    assert str(error) == "400 InvalidRequest: bad cursor"
    assert json.loads(json.dumps(error.upstream().body())) == {
        "error": "InvalidRequest",
        "message": "bad cursor",
    }

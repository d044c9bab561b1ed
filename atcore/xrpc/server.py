"""Serving XRPC methods as Starlette routes (spec-xrpc.md, spec-event-stream.md "Connection").

`mount(router)` gives one websocket route per subscription and one catch-all `/xrpc/{nsid}`
HTTP route that dispatches by NSID, so every `/xrpc/` request gets a JSON error: a known method
called with the wrong HTTP verb is 400 InvalidRequest (as the reference server answers), an NSID
nobody serves goes to the router's fallback or is 501 MethodNotImplemented.

A request runs: params (typed by the lexicon) -> auth -> body (bounded, JSON checked against
the lexicon input) -> rate limit -> handler -> response (optionally checked against the output),
carrying any headers the rate limit returned.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.types import Receive, Scope, Send

from atcore.datamodel import json_default
from atcore.errors import InvalidRecord, LexiconNotFound
from atcore.lexicon import validate_input, validate_output, validate_params
from atcore.syntax.nsid import is_valid_nsid
from atcore.xrpc.body import JSON, check_input, decode_json, read_body
from atcore.xrpc.errors import InternalServerError, InvalidRequest, MethodNotImplemented, XrpcError
from atcore.xrpc.failures import error_response
from atcore.xrpc.router import (
    HandlerResult,
    Method,
    XrpcRequest,
    XrpcResponse,
    XrpcRouter,
    query_params,
)
from atcore.xrpc.subscription import SubscriptionEndpoint

_VERB = {"query": "GET", "procedure": "POST"}


def mount(router: XrpcRouter) -> list[BaseRoute]:
    """The routes serving `router`: websocket subscriptions first, then `/xrpc/{nsid}`."""
    routes: list[BaseRoute] = [
        WebSocketRoute(f"/xrpc/{nsid}", SubscriptionEndpoint(router, sub))
        for nsid, sub in router.subscriptions.items()
    ]
    routes.append(Route("/xrpc/{nsid:path}", _XrpcEndpoint(router), name="xrpc"))
    return routes


class _XrpcEndpoint:
    """An ASGI app (so Starlette routes every HTTP verb here) dispatching by NSID."""

    def __init__(self, router: XrpcRouter) -> None:
        self.router = router

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        nsid = str(scope["path_params"]["nsid"])
        try:
            response = await self._dispatch(request, nsid)
        except Exception as exc:  # every failure becomes a JSON error body
            response = error_response(exc, f"xrpc method {nsid:.300}", scope)
        await response(scope, receive, send)

    async def _dispatch(self, request: Request, nsid: str) -> Response:
        if not is_valid_nsid(nsid):
            raise InvalidRequest("invalid xrpc path")
        verb = "GET" if request.method == "HEAD" else request.method
        expected = _VERB.get(_lexicon_type(self.router, nsid), "")
        if expected and verb != expected:
            raise InvalidRequest(f"Incorrect HTTP method ({request.method}) expected {expected}")
        if nsid in self.router.subscriptions:
            if verb != "GET":
                raise XrpcError(405, message="a subscription is opened with a GET request")
            raise XrpcError(426, message="a subscription needs a websocket upgrade")
        method = self.router.methods.get(nsid)
        if method is None:
            if self.router.fallback is not None:
                return await self.router.fallback(request, nsid)
            raise MethodNotImplemented()
        return await self._call(method, request)

    async def _call(self, method: Method, request: Request) -> Response:
        catalog = self.router.catalog
        params = validate_params(catalog, method.nsid, query_params(request.query_params))
        auth = await method.auth(request) if method.auth is not None else None
        schema = catalog.get_def(method.nsid)
        encoding = check_input(request, schema.get("input"))
        limit = self.router.body_limit(method, encoding or "")
        body: Any = None
        if encoding is not None and schema["input"]["encoding"] == JSON:
            body = decode_json(await read_body(request, limit))
            validate_input(catalog, method.nsid, body)
        req = XrpcRequest(request, method.nsid, params, auth, body, encoding, limit)
        limit_headers = None if method.rate_limit is None else await method.rate_limit(req)
        if not limit_headers:
            return await self._respond(method, req)
        # The rate limit's headers go on error answers from the handler too.
        try:
            response = await self._respond(method, req)
        except Exception as exc:
            response = error_response(exc, f"xrpc method {method.nsid}", req.request.scope)
        response.headers.update(limit_headers)
        return response

    async def _respond(self, method: Method, req: XrpcRequest) -> Response:
        result = await method.handler(req)
        if self.router.validate_output:
            _check_output(self.router, method.nsid, result)
        return render(result)


def render(result: HandlerResult) -> Response:
    """The HTTP response for a handler's result."""
    if isinstance(result, Response):
        return result
    if result is None:
        return Response(status_code=200)
    if isinstance(result, dict):
        return Response(json_bytes(result), media_type=JSON)
    body, headers = result.body, dict(result.headers or {})
    if body is None:
        return Response(status_code=200, headers=headers)
    if isinstance(body, bytes):
        return Response(body, media_type=result.encoding, headers=headers)
    if isinstance(body, AsyncIterable):
        return StreamingResponse(body, media_type=result.encoding, headers=headers)
    return Response(json_bytes(body), media_type=result.encoding, headers=headers)


def json_bytes(value: Any) -> bytes:
    """Compact UTF-8 JSON of a data-model value (CIDs as `$link`, bytes as `$bytes`).

    orjson writes the same bytes as compact `json.dumps(ensure_ascii=False)` for data-model
    values (strings, integers, booleans, null, maps, arrays: no floats) at a tenth of the CPU;
    what it refuses (integers beyond 64 bits, keys that are not strings) goes through
    json.dumps as before, so the result or the error is the same either way."""
    try:
        return orjson.dumps(value, default=json_default)
    except orjson.JSONEncodeError:
        return json.dumps(
            value, default=json_default, ensure_ascii=False, separators=(",", ":")
        ).encode()


def _lexicon_type(router: XrpcRouter, nsid: str) -> str:
    try:
        return str(router.catalog.get_def(nsid)["type"])
    except LexiconNotFound:
        return ""


def _check_output(router: XrpcRouter, nsid: str, result: HandlerResult) -> None:
    """Debug-mode check that a JSON response matches the lexicon's `output`."""
    if isinstance(result, Response):
        return
    body = result.body if isinstance(result, XrpcResponse) else result
    is_json = not isinstance(result, XrpcResponse) or result.encoding == JSON
    declared = router.catalog.get_def(nsid).get("output")
    if declared is None:
        if body is not None:
            raise InternalServerError(f"{nsid} returned a body but its lexicon declares no output")
        return
    if body is None:
        raise InternalServerError(f"{nsid} returned no body but its lexicon declares an output")
    if is_json and declared["encoding"] == JSON:
        try:
            validate_output(router.catalog, nsid, body)
        except InvalidRecord as exc:
            raise InternalServerError(f"{nsid} output does not match its lexicon: {exc}") from exc

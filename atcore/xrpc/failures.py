"""Mapping any exception to one XRPC error (spec-xrpc.md, "Error Responses"; STYLE.md #8), and
the middleware that lets no exception escape a service unanswered.

`XrpcError`s pass through; the protocol core's domain errors (every `ValueError` subclass in
`atcore.errors`: InvalidSyntax, DecodeError, InvalidRecord, ...) are the client's fault and
become 400 InvalidRequest with their message; anything else is our bug, answered as a 500 whose
message names the request's id, and logged as ONE line with that id, the method, the path, the
exception and where it was raised: a hostile client repeating a failing request must not be able
to fill the log with tracebacks. The same id ties the answer a user reports to the log line.
"""

from __future__ import annotations

import logging
import secrets
import traceback
from collections.abc import MutableMapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from atcore import errors
from atcore.xrpc.errors import InternalServerError, InvalidRequest, XrpcError

log = logging.getLogger("atcore.xrpc")

DOMAIN_ERRORS: tuple[type[ValueError], ...] = tuple(
    value
    for value in vars(errors).values()
    if isinstance(value, type) and issubclass(value, ValueError)
)
# Enough of an exception's message to tell what failed, on one line.
MAX_LOGGED_MESSAGE = 300
# 501 MethodNotImplemented answers a client asking for a method nobody serves here: not a failure
# of ours, and not worth a log line a client could repeat at will.
NOT_IMPLEMENTED = 501
# websocket close code: the server met an unexpected condition (RFC 6455).
CLOSE_INTERNAL = 1011


def request_id(scope: MutableMapping[str, Any]) -> str:
    """The id of the request `scope` belongs to, made (and kept in the scope) on first use."""
    state = scope.setdefault("state", {})
    rid = state.get("request_id")
    if not isinstance(rid, str):
        rid = state["request_id"] = secrets.token_hex(8)
    return rid


def to_xrpc_error(exc: BaseException, where: str, scope: Scope | None = None) -> XrpcError:
    """The XRPC error to answer `exc` with; server-side failures are logged (one line, `where`
    names the method) and carry the request's id into their answer."""
    if isinstance(exc, XrpcError) and (exc.status < 500 or exc.status == NOT_IMPLEMENTED):
        return exc
    if isinstance(exc, DOMAIN_ERRORS):
        return InvalidRequest(str(exc))
    rid = request_id(scope if scope is not None else {})
    _log_failure(exc, where, rid, scope or {})
    error = exc if isinstance(exc, XrpcError) else InternalServerError()
    error.request_id = rid
    return error


def error_response(exc: BaseException, where: str, scope: Scope | None = None) -> JSONResponse:
    """A JSON error response for `exc`, with the error's own headers (Retry-After, ...)."""
    error = to_xrpc_error(exc, where, scope)
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers)


async def http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's own HTTPException (a path no route serves, a verb a route does not take) as
    an XRPC error body, for an app's `exception_handlers`: clients read the JSON `error`."""
    assert isinstance(exc, HTTPException)
    error = XrpcError(exc.status_code, message=exc.detail, headers=exc.headers)
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers)


class FailureMiddleware:
    """ASGI middleware answering any exception the app let escape: an HTTP request gets the JSON
    error (a 500 naming the request id) unless its response had started, a websocket is closed
    with 1011; either way one log line. A request's id is made when a failure first needs it:
    reading random bytes for every request cost ~5% of a PDS write's CPU."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            started = True  # a response start, a websocket accept or close: no going back
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception as exc:  # the last stop: nothing above us answers it
            response = error_response(exc, "the app", scope)
            if started:
                return  # too late to answer: the line is logged, the connection ends
            if scope["type"] == "http":
                await response(scope, receive, send)
            else:
                await send({"type": "websocket.close", "code": CLOSE_INTERNAL})


def _log_failure(exc: BaseException, where: str, rid: str, scope: Scope) -> None:
    method = scope.get("method") or scope.get("type", "?").upper()
    path = str(scope.get("path", "?"))[:200]
    text = " ".join(str(exc).split())[:MAX_LOGGED_MESSAGE]
    frames = traceback.extract_tb(exc.__traceback__)
    at = f" at {_short(frames[-1].filename)}:{frames[-1].lineno}" if frames else ""
    name = exc.error if isinstance(exc, XrpcError) else type(exc).__name__
    log.error("request %s %s %s failed in %s: %s: %s%s", rid, method, path, where, name, text, at)


def _short(filename: str) -> str:
    """The last two parts of a source path: enough to find it, short enough for one line."""
    return "/".join(filename.replace("\\", "/").split("/")[-2:])

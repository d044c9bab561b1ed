"""XRPC request bodies: presence, encoding, bounded reads (spec-xrpc.md, "Lexicon HTTP Endpoints").

A lexicon's `input.encoding` names the accepted Content-Type: an exact MIME type, a list, a
`type/*` range or `*/*`. Bodies are read from the ASGI stream with a hard byte limit, so a
client that lies about (or omits) Content-Length still cannot make us buffer more than that.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import ClientDisconnect, Request

from atcore.datamodel import from_json
from atcore.errors import DecodeError, InvalidSyntax
from atcore.syntax.integer import parse_integer
from atcore.xrpc.errors import InvalidRequest, PayloadTooLarge

JSON = "application/json"


def has_body(request: Request) -> bool:
    """Whether the request announces a body (a non-zero length or a chunked transfer)."""
    length = request.headers.get("content-length")
    if length is not None:
        return length.strip() not in ("", "0")
    return "transfer-encoding" in request.headers


def content_type(request: Request) -> str | None:
    """The bare MIME type of the body (`application/json; charset=utf-8` -> `application/json`)."""
    raw = request.headers.get("content-type", "")
    mime = raw.split(";", 1)[0].strip().lower()
    return mime or None


def accepts_encoding(expected: str, actual: str) -> bool:
    """Whether `actual` matches a lexicon encoding such as `image/*` or `*/*`."""
    for option in (part.strip().lower() for part in expected.split(",")):
        if option in ("*/*", actual):
            return True
        if option.endswith("/*") and actual.startswith(option[:-1]):
            return True
    return False


def check_input(request: Request, input_schema: dict[str, Any] | None) -> str | None:
    """Check body presence and Content-Type against the lexicon; return the body's MIME type."""
    present = has_body(request)
    if input_schema is None:
        if present:
            raise InvalidRequest("A request body was provided when none was expected")
        return None
    if not present:
        raise InvalidRequest("A request body is expected but none was provided")
    mime = content_type(request)
    if mime is None:
        raise InvalidRequest("Request encoding (Content-Type) required but not provided")
    if not accepts_encoding(input_schema["encoding"], mime):
        raise InvalidRequest(f"Wrong request encoding (Content-Type): {mime:.100}")
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding != "identity":
        raise InvalidRequest(f"Unsupported Content-Encoding: {encoding:.100}")
    return mime


async def stream_body(request: Request, limit: int) -> AsyncIterator[bytes]:
    """The body's chunks; PayloadTooLarge as soon as more than `limit` bytes arrive."""
    declared = request.headers.get("content-length", "").strip()
    try:
        if declared and parse_integer(declared, 0) > limit:
            raise _too_large(limit)
    except InvalidSyntax as exc:
        raise InvalidRequest(f"Content-Length {exc}") from None
    seen = 0
    try:
        async for chunk in request.stream():
            seen += len(chunk)
            if seen > limit:
                raise _too_large(limit)
            if chunk:
                yield chunk
    except ClientDisconnect as exc:  # the client's doing, not a server failure worth a traceback
        raise InvalidRequest("the client disconnected before sending the whole body") from exc


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, at most `limit` bytes (PayloadTooLarge beyond)."""
    return b"".join([chunk async for chunk in stream_body(request, limit)])


def decode_json(data: bytes) -> Any:
    """A JSON body as data-model values (`$link` -> CID, `$bytes` -> bytes), else InvalidRequest."""
    try:
        parsed = json.loads(data)
    except RecursionError as exc:
        raise InvalidRequest("request body nests too deeply") from exc
    except ValueError as exc:  # bad UTF-8, bad JSON, or an integer past int's digit limit
        raise InvalidRequest(f"request body is not valid JSON: {exc}") from exc
    try:
        return from_json(parsed)
    except DecodeError as exc:
        raise InvalidRequest(f"request body: {exc}") from exc


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"request body is larger than {limit} bytes")

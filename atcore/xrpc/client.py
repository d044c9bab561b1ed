"""The async XRPC client every Skyloft tool and service calls other servers with (spec-xrpc.md,
"Lexicon HTTP Endpoints", "Error Responses").

Queries are GETs with URL parameters (booleans as `true`/`false`, arrays as repeated names),
procedures are POSTs with a JSON or raw body. Any non-2xx answer raises `XrpcClientError`
carrying the status and the body's `error`/`message` (or the status's conventional name when
the body is not an XRPC error, e.g. a proxy's HTML page); a server's 429 keeps its
`Retry-After`. Responses are read with a byte limit, each call has a time limit, redirects are
not followed. `query_stream` reads an answer too large to hold (a repo's CAR) as it arrives.

It runs over either HTTP stack: an `aiohttp.ClientSession` (from `http_session()`), about four
times cheaper in CPU per request than httpx (bench/migrate.py copies blobs with it), or an
`httpx.AsyncClient`, for the ASGI test transport and the SSRF-guarded client of
`atcore.identity.pinned` that calls go through when a user picked the URL.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any, Final

import aiohttp
import httpx

from atcore.datamodel import to_json
from atcore.xrpc.errors import UpstreamFailure, UpstreamTimeout, XrpcError, status_name

ParamValue = str | int | bool
Params = Mapping[str, ParamValue | list[ParamValue] | tuple[ParamValue, ...] | None]
HttpClient = httpx.AsyncClient | aiohttp.ClientSession

DEFAULT_MAX_RESPONSE: Final = 16 * 1024 * 1024
DEFAULT_TIMEOUT: Final = 60.0
# Error bodies are a couple of short strings; anything longer is not one.
_MAX_ERROR_FIELD: Final = 1000
_MAX_ERROR_BODY: Final = 64 * 1024
_READ_CHUNK: Final = 256 * 1024


@dataclass(frozen=True)
class XrpcStream:
    """A 2xx answer being read: status, media type, headers (lower-case names), body chunks."""

    status: int
    mime: str
    headers: Mapping[str, str]
    chunks: AsyncIterator[bytes]


@dataclass(frozen=True)
class XrpcAnswer:
    """A 2xx answer: status, media type (no parameters), body, headers (lower-case names)."""

    status: int
    mime: str
    body: bytes
    headers: Mapping[str, str]


class XrpcClientError(Exception):
    """A failed XRPC call. `status` is 0 when no HTTP answer arrived (connection, timeout);
    `error` is the server's error name, `retry_after` its Retry-After header, if any, and
    `headers` all of the answer's (lower-case names; empty without an answer)."""

    def __init__(
        self,
        status: int,
        error: str,
        message: str | None = None,
        *,
        retry_after: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {error}: {message}" if message else f"{status} {error}")
        self.status = status
        self.error = error
        self.message = message
        self.retry_after = retry_after
        self.headers: Mapping[str, str] = headers or {}

    def upstream(self) -> XrpcError:
        """This failure as an error a server answers its own caller with: a 4xx keeps its
        status and name, anything else is the upstream's fault (502, or 504 on a timeout)."""
        if 400 <= self.status < 500:
            return XrpcError(self.status, self.error, self.message)
        if self.error == "UpstreamTimeout":
            return UpstreamTimeout(self.message)
        return UpstreamFailure(self.message or f"upstream answered {self.status} {self.error}")


def http_session(*, connections: int = 64, trust_env: bool = False) -> aiohttp.ClientSession:
    """An aiohttp session tuned for XRPC calls: keep-alive pool of `connections`, no cookie
    jar, no session-wide time limit (each call has its own). `trust_env` takes proxies from
    HTTP(S)_PROXY, as a command a person runs should; services leave it off. Call inside the
    event loop; close it (`async with`) when done."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=connections, keepalive_timeout=30),
        cookie_jar=aiohttp.DummyCookieJar(),
        timeout=aiohttp.ClientTimeout(total=None),
        trust_env=trust_env,
    )


class XrpcClient:
    """Calls XRPC methods of the service at `base_url` through a shared HTTP client."""

    def __init__(
        self,
        base_url: str,
        http: HttpClient,
        *,
        auth_header: str | None = None,
        max_response: int = DEFAULT_MAX_RESPONSE,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = http
        self.auth_header = auth_header
        self.max_response = max_response
        self.timeout = timeout

    async def query(self, nsid: str, params: Params | None = None) -> Any:
        """GET `nsid`; the parsed JSON body, or the raw bytes for other content types."""
        return _decoded(await self._send("GET", nsid, params, None, None))

    async def query_bytes(self, nsid: str, params: Params | None = None) -> tuple[bytes, str]:
        """GET `nsid` whose output is not JSON (a blob, a CAR): its bytes and Content-Type."""
        answer = await self._send("GET", nsid, params, None, None)
        return answer.body, answer.mime

    async def query_answer(
        self, nsid: str, params: Params | None = None, *, headers: Mapping[str, str] | None = None
    ) -> XrpcAnswer:
        """GET `nsid` with extra request `headers`; the whole answer, headers included."""
        return await self._send("GET", nsid, params, None, None, headers)

    async def procedure(
        self,
        nsid: str,
        data: dict[str, Any] | bytes | None = None,
        *,
        encoding: str | None = None,
        params: Params | None = None,
    ) -> Any:
        """POST `nsid` with a JSON object (data-model values allowed) or raw `encoding` bytes."""
        if isinstance(data, dict):
            content: bytes | None = json.dumps(to_json(data), separators=(",", ":")).encode()
            encoding = encoding or "application/json"
        else:
            content = data
            if content is not None and encoding is None:
                raise ValueError("raw bytes need an encoding (their Content-Type)")
        return _decoded(await self._send("POST", nsid, params, content, encoding))

    @asynccontextmanager
    async def query_stream(
        self, nsid: str, params: Params | None = None, *, headers: Mapping[str, str] | None = None
    ) -> AsyncIterator[XrpcStream]:
        """GET `nsid` whose output is too large to hold (a whole repo's CAR): its 2xx answer,
        the body as chunks as they arrive. The byte and time limits cover the whole block."""
        async with self._open("GET", nsid, params, None, None, headers) as (status, head, body):
            if not 200 <= status < 300:
                error = bytearray()
                # Only the start: an error is short, the byte limit is not.
                while len(error) < _MAX_ERROR_BODY and (chunk := await body.next()):
                    error += chunk
                raise _error_from(_answer(status, head, bytes(error[:_MAX_ERROR_BODY])))
            answer = _answer(status, head, b"")
            yield XrpcStream(status, answer.mime, answer.headers, aiter(body))

    async def _send(
        self,
        verb: str,
        nsid: str,
        params: Params | None,
        content: bytes | None,
        encoding: str | None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> XrpcAnswer:
        """One request; its 2xx answer, else XrpcClientError."""
        async with self._open(verb, nsid, params, content, encoding, extra_headers) as opened:
            status, headers, body = opened
            answer = _answer(status, headers, await body.all())
        if not 200 <= answer.status < 300:
            raise _error_from(answer)
        return answer

    @asynccontextmanager
    async def _open(
        self,
        verb: str,
        nsid: str,
        params: Params | None,
        content: bytes | None,
        encoding: str | None,
        extra_headers: Mapping[str, str] | None,
    ) -> AsyncIterator[tuple[int, Iterable[tuple[str, str]], _Body]]:
        """One request, open for the `async with`: status, headers and the body's chunks
        (bounded by `max_response`); failures to get or read an answer as XrpcClientError."""
        headers = {"accept": "application/json, */*", **(extra_headers or {})}
        if self.auth_header is not None:
            headers["authorization"] = self.auth_header
        if encoding is not None:
            headers["content-type"] = encoding
        url = f"{self.base_url}/xrpc/{nsid}"
        query = _encode_params(params or {})
        limit = self.max_response
        try:
            async with asyncio.timeout(self.timeout):
                if isinstance(self.http, aiohttp.ClientSession):
                    async with self.http.request(
                        verb,
                        url,
                        params=query,
                        data=content,
                        headers=headers,
                        allow_redirects=False,
                    ) as response:
                        read = partial(response.content.read, _READ_CHUNK)
                        body = _Body(response.status, response.content_length, read, limit)
                        yield response.status, response.headers.items(), body
                else:
                    request = self.http.build_request(
                        verb, url, params=tuple(query), content=content, headers=headers
                    )
                    reply = await self.http.send(request, stream=True)
                    try:
                        length = reply.headers.get("content-length")
                        chunks = reply.aiter_bytes()
                        read = partial(anext, chunks, b"")
                        body = _Body(reply.status_code, length, read, limit)
                        yield reply.status_code, reply.headers.items(), body
                    finally:
                        await reply.aclose()
        except TimeoutError:
            raise XrpcClientError(
                0, "UpstreamTimeout", f"no answer from {url} within {self.timeout:g} s"
            ) from None
        except httpx.TimeoutException as exc:  # the httpx client's own, shorter, limits
            raise XrpcClientError(0, "UpstreamTimeout", f"{type(exc).__name__}: {exc}") from exc
        except (httpx.TransportError, aiohttp.ClientError) as exc:
            raise XrpcClientError(0, "Unknown", f"{type(exc).__name__}: {exc}") from exc


def _decoded(answer: XrpcAnswer) -> Any:
    """A 2xx answer's JSON parsed, or its bytes for other content types."""
    if answer.mime == "application/json":
        try:
            return json.loads(answer.body)
        except ValueError as exc:
            raise XrpcClientError(200, "InvalidResponse", str(exc)) from exc
    return answer.body


class _Body:
    """An answer's body, read in chunks within the client's byte limit."""

    def __init__(
        self,
        status: int,
        length: int | str | None,
        read: Callable[[], Awaitable[bytes]],
        limit: int,
    ) -> None:
        self.status = status
        self._read = read
        self._limit = limit
        self._size = 0
        if isinstance(length, str):
            length = int(length) if length.isdigit() else None
        if length is not None:
            self._check(length)

    async def next(self) -> bytes:
        """The next chunk; b"" at the end."""
        chunk = await self._read()
        self._size += len(chunk)
        self._check(self._size)
        return chunk

    async def all(self) -> bytes:
        chunks: list[bytes] = []
        while chunk := await self.next():
            chunks.append(chunk)
        return b"".join(chunks)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while chunk := await self.next():
            yield chunk

    def _check(self, size: int) -> None:
        if size > self._limit:
            raise XrpcClientError(
                self.status, "InvalidResponse", f"response is larger than {self._limit} bytes"
            )


def _encode_params(params: Params) -> list[tuple[str, str]]:
    encoded: list[tuple[str, str]] = []
    for name, value in params.items():
        values = value if isinstance(value, (list, tuple)) else [value]
        for item in values:
            if item is None:
                continue
            text = ("true" if item else "false") if isinstance(item, bool) else str(item)
            encoded.append((name, text))
    return encoded


def _answer(status: int, headers: Iterable[tuple[str, str]], body: bytes) -> XrpcAnswer:
    lowered: dict[str, str] = {}
    for name, value in headers:  # a repeated header is one, its values joined (RFC 9110 5.3)
        key = name.lower()
        lowered[key] = f"{lowered[key]}, {value}" if key in lowered else value
    mime = lowered.get("content-type", "").split(";", 1)[0].strip().lower()
    return XrpcAnswer(status, mime, body, lowered)


def _error_from(answer: XrpcAnswer) -> XrpcClientError:
    """The error a non-2xx response carries; falls back to the status's conventional name."""
    status, error, message = answer.status, status_name(answer.status), None
    body = answer.body if answer.mime == "application/json" else b""
    try:
        parsed = json.loads(body) if body else None
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        if isinstance(parsed.get("error"), str) and parsed["error"]:
            error = parsed["error"][:_MAX_ERROR_FIELD]
        if isinstance(parsed.get("message"), str):
            message = parsed["message"][:_MAX_ERROR_FIELD]
    return XrpcClientError(
        status,
        error,
        message,
        retry_after=answer.headers.get("retry-after"),
        headers=answer.headers,
    )

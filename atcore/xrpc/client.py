"""A thin async XRPC client over httpx (spec-xrpc.md, "Lexicon HTTP Endpoints", "Error Responses").

Queries are GETs with URL parameters (booleans as `true`/`false`, arrays as repeated names),
procedures are POSTs with a JSON or raw body. Any non-2xx answer raises `XrpcClientError`
carrying the status and the body's `error`/`message` (or the status's conventional name when
the body is not an XRPC error, e.g. a proxy's HTML page). Responses are read with a byte limit.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import httpx

from atcore.datamodel import to_json
from atcore.xrpc.errors import status_name

ParamValue = str | int | bool
Params = Mapping[str, ParamValue | list[ParamValue] | tuple[ParamValue, ...] | None]

DEFAULT_MAX_RESPONSE = 16 * 1024 * 1024
# Error bodies are a couple of short strings; anything longer is not one.
_MAX_ERROR_FIELD = 1000


class XrpcClientError(Exception):
    """A failed XRPC call. `status` is 0 when no HTTP answer arrived (connection, timeout)."""

    def __init__(self, status: int, error: str, message: str | None = None) -> None:
        super().__init__(f"{status} {error}: {message}" if message else f"{status} {error}")
        self.status = status
        self.error = error
        self.message = message


class XrpcClient:
    """Calls XRPC methods of the service at `base_url` through a shared `httpx.AsyncClient`."""

    def __init__(
        self,
        base_url: str,
        http: httpx.AsyncClient,
        *,
        auth_header: str | None = None,
        max_response: int = DEFAULT_MAX_RESPONSE,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = http
        self.auth_header = auth_header
        self.max_response = max_response

    async def query(self, nsid: str, params: Params | None = None) -> Any:
        """GET `nsid`; the parsed JSON body, or the raw bytes for other content types."""
        return await self._call("GET", nsid, params, None, None)

    async def query_bytes(self, nsid: str, params: Params | None = None) -> tuple[bytes, str]:
        """GET `nsid` whose output is not JSON (a blob, a CAR): its bytes and Content-Type."""
        body, mime = await self._send("GET", nsid, params, None, None)
        return body, mime

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
        return await self._call("POST", nsid, params, content, encoding)

    async def _call(
        self,
        verb: str,
        nsid: str,
        params: Params | None,
        content: bytes | None,
        encoding: str | None,
    ) -> Any:
        body, mime = await self._send(verb, nsid, params, content, encoding)
        if mime == "application/json":
            try:
                return json.loads(body)
            except ValueError as exc:
                raise XrpcClientError(200, "InvalidResponse", str(exc)) from exc
        return body

    async def _send(
        self,
        verb: str,
        nsid: str,
        params: Params | None,
        content: bytes | None,
        encoding: str | None,
    ) -> tuple[bytes, str]:
        """One request; the body and media type of a 2xx answer, else XrpcClientError."""
        headers = {"accept": "application/json, */*"}
        if self.auth_header is not None:
            headers["authorization"] = self.auth_header
        if encoding is not None:
            headers["content-type"] = encoding
        request = self.http.build_request(
            verb,
            f"{self.base_url}/xrpc/{nsid}",
            params=_encode_params(params or {}),
            content=content,
            headers=headers,
        )
        try:
            response = await self.http.send(request, stream=True)
            try:
                body = await self._read(response)
            finally:
                await response.aclose()
        except httpx.TransportError as exc:
            raise XrpcClientError(0, "Unknown", f"{type(exc).__name__}: {exc}") from exc
        mime = _mime(response)
        if not response.is_success:
            raise _error_from(response.status_code, body if mime == "application/json" else b"")
        return body, mime

    async def _read(self, response: httpx.Response) -> bytes:
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > self.max_response:
                raise XrpcClientError(
                    response.status_code,
                    "InvalidResponse",
                    f"response is larger than {self.max_response} bytes",
                )
            chunks.append(chunk)
        return b"".join(chunks)


def _encode_params(params: Params) -> list[tuple[str, str | int | float | bool | None]]:
    encoded: list[tuple[str, str | int | float | bool | None]] = []
    for name, value in params.items():
        values = value if isinstance(value, (list, tuple)) else [value]
        for item in values:
            if item is None:
                continue
            text = ("true" if item else "false") if isinstance(item, bool) else str(item)
            encoded.append((name, text))
    return encoded


def _mime(response: httpx.Response) -> str:
    raw: str = response.headers.get("content-type", "")
    return raw.split(";", 1)[0].strip().lower()


def _error_from(status: int, body: bytes) -> XrpcClientError:
    """The error a non-2xx response carries; falls back to the status's conventional name."""
    error, message = status_name(status), None
    try:
        parsed = json.loads(body) if body else None
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        if isinstance(parsed.get("error"), str) and parsed["error"]:
            error = parsed["error"][:_MAX_ERROR_FIELD]
        if isinstance(parsed.get("message"), str):
            message = parsed["message"][:_MAX_ERROR_FIELD]
    return XrpcClientError(status, error, message)

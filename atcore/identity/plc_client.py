"""HTTP client for a PLC directory (plc-did-method-spec-v0.1.md, plc-server-openapi3.yaml).

Only transport: building, signing and validating operations is `atcore.identity.plc`.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Mapping
from typing import Any, Final

import httpx

from atcore.errors import (
    DidDeactivated,
    DidNotFound,
    InvalidSyntax,
    PlcRequestError,
    ResolutionFailed,
)
from atcore.identity.fetch import bounded_get, read_capped
from atcore.syntax.did import Did

# An audit log holds every operation ever submitted (each at most 7,500 bytes of CBOR, a little
# more as JSON); this leaves room for a long history without letting a directory flood us.
MAX_LOG_BYTES: Final = 8 * 1024 * 1024
MAX_RESPONSE_BYTES: Final = 256 * 1024
_PLC_RE: Final = re.compile(r"did:plc:[a-z2-7]{24}")
_SCHEMES: Final = frozenset({"http", "https"})


class PlcClient:
    """Talks to one directory. 404 -> DidNotFound, 410 -> DidDeactivated, other 4xx ->
    PlcRequestError (all carrying the directory's message); 5xx, network errors, timeouts and
    oversized or non-JSON answers -> ResolutionFailed."""

    def __init__(self, plc_url: str, http: httpx.AsyncClient, *, timeout: float = 10.0) -> None:
        self.plc_url = plc_url.rstrip("/")
        self._http = http
        self._timeout = timeout

    async def submit(self, did: str, signed_op: Mapping[str, Any]) -> None:
        """POST a signed operation; returns once the directory has accepted it."""
        url = self._url(did, "")
        try:
            async with asyncio.timeout(self._timeout):
                async with self._http.stream("POST", url, json=dict(signed_op)) as response:
                    body = await read_capped(response, MAX_RESPONSE_BYTES)
        except TimeoutError as exc:
            raise ResolutionFailed(f"PLC directory did not answer within {self._timeout}s") from exc
        except httpx.HTTPError as exc:
            raise ResolutionFailed(f"submitting to {url} failed: {exc!r}") from exc
        _check_status(did, response.status_code, body)

    async def get_last_op(self, did: str) -> dict[str, Any]:
        return _object(await self._get_json(did, "/log/last", MAX_RESPONSE_BYTES))

    async def get_op_log(self, did: str) -> list[dict[str, Any]]:
        """The operations of the current (unnullified) chain, oldest first."""
        return _object_list(await self._get_json(did, "/log", MAX_LOG_BYTES))

    async def get_audit_log(self, did: str) -> list[dict[str, Any]]:
        """Every log entry (`did`, `operation`, `cid`, `nullified`, `createdAt`), oldest first."""
        return _object_list(await self._get_json(did, "/log/audit", MAX_LOG_BYTES))

    async def get_document_data(self, did: str) -> dict[str, Any]:
        """The PLC state of the DID (rotationKeys, verificationMethods, alsoKnownAs, services)."""
        return _object(await self._get_json(did, "/data", MAX_RESPONSE_BYTES))

    async def _get_json(self, did: str, suffix: str, max_bytes: int) -> object:
        fetched = await bounded_get(
            self._http,
            self._url(did, suffix),
            max_bytes=max_bytes,
            timeout=self._timeout,
            schemes=_SCHEMES,
            accept="application/json",
        )
        _check_status(did, fetched.status, fetched.body)
        try:
            return json.loads(fetched.body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ResolutionFailed(f"PLC directory sent invalid JSON for {did}: {exc}") from exc

    def _url(self, did: str, suffix: str) -> str:
        return f"{self.plc_url}/{parse_plc_did(did)}{suffix}"


def parse_plc_did(did: str) -> Did:
    """`did` if it has the did:plc shape (24 base32 characters), else InvalidSyntax.

    A DID becomes a URL path segment on the directory; the strict shape keeps it a single one.
    """
    if _PLC_RE.fullmatch(did) is None:
        raise InvalidSyntax(f"not a did:plc identifier: {did[:80]!r}")
    return Did(did)


def _check_status(did: str, status: int, body: bytes) -> None:
    if 200 <= status < 300:
        return
    message = _message(body)
    if status == 404:
        raise DidNotFound(f"{did}: {message}")
    if status == 410:
        raise DidDeactivated(f"{did}: {message}")
    if 400 <= status < 500:
        raise PlcRequestError(status, message)
    raise ResolutionFailed(f"PLC directory answered {status} for {did}: {message}")


def _message(body: bytes) -> str:
    """The directory's `message` (or `error`) field, else the start of the body as text."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        data = None
    if isinstance(data, dict):
        for key in ("message", "error"):
            if isinstance(data.get(key), str):
                return str(data[key])[:500]
    return body[:500].decode("utf-8", errors="replace") or "(empty response)"


def _object(value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ResolutionFailed("PLC directory answer is not a JSON object")
    return value


def _object_list(value: object) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ResolutionFailed("PLC directory answer is not a JSON list of objects")
    return value

"""Bounded HTTP GET for identity lookups: size cap while streaming, total deadline, checked hops.

Every hop of a redirect chain is followed here, not by the client, so that its scheme is
re-checked; the spec allows redirects for handle resolution and a redirect is the easiest way
to bounce a fetch onto an internal address. The hosts' addresses are checked by the client
given (atcore.identity.pinned.guarded_client) when it connects.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Mapping
from dataclasses import dataclass
from typing import Final, Protocol

import httpx

from atcore.errors import ResolutionFailed, ResponseTooLarge

MAX_REDIRECTS: Final = 3
_REDIRECT_STATUSES: Final = frozenset({301, 302, 303, 307, 308})


@dataclass(frozen=True)
class Fetched:
    status: int
    body: bytes
    url: str


class DocumentGet(Protocol):
    """A bounded GET of a DID document (what IdentityResolver asks of a PLC client): the
    limits and failures of `bounded_get`, redirects and all."""

    async def __call__(
        self, url: str, *, max_bytes: int, timeout: float, accept: str
    ) -> Fetched: ...


async def bounded_get(
    http: httpx.AsyncClient,
    url: str,
    *,
    max_bytes: int,
    timeout: float,
    schemes: frozenset[str],
    accept: str = "*/*",
    host: str | None = None,
) -> Fetched:
    """GET `url`, following up to MAX_REDIRECTS redirects, all within `timeout` seconds.

    `host` replaces the Host header of the first request only (a dev-mode handle asked at a
    PDS); a redirect goes to the host it names.

    Raises ResolutionFailed on network errors, the deadline, a body over `max_bytes` (as
    ResponseTooLarge), a compressed body (we ask for identity encoding so a small response
    cannot inflate), or a redirect to a scheme outside `schemes`; the client's guard error
    (UnsafeAddress) propagates.
    """
    try:
        async with asyncio.timeout(timeout):
            return await _follow(http, httpx.URL(url), max_bytes, schemes, accept, host)
    except TimeoutError as exc:
        raise ResolutionFailed(f"no complete answer from {url} within {timeout}s") from exc
    except httpx.HTTPError as exc:
        raise ResolutionFailed(f"fetching {url} failed: {exc!r}") from exc


async def _follow(
    http: httpx.AsyncClient,
    url: httpx.URL,
    max_bytes: int,
    schemes: frozenset[str],
    accept: str,
    host: str | None,
) -> Fetched:
    for _ in range(MAX_REDIRECTS + 1):
        if url.scheme not in schemes or not url.host:
            raise ResolutionFailed(f"refusing to fetch {url}: scheme must be one of {schemes}")
        headers = {"accept": accept, "accept-encoding": "identity"}
        if host is not None:
            headers["host"] = host
        async with http.stream("GET", url, headers=headers, follow_redirects=False) as response:
            location = response.headers.get("location")
            if response.status_code in _REDIRECT_STATUSES and location:
                url, host = url.join(location), None
                continue
            body = await read_capped(response, max_bytes)
            return Fetched(response.status_code, body, str(url))
    raise ResolutionFailed(f"more than {MAX_REDIRECTS} redirects fetching {url}")


async def read_capped(response: httpx.Response, max_bytes: int) -> bytes:
    return await capped_body(str(response.url), response.headers, response.aiter_raw(), max_bytes)


async def capped_body(
    url: str, headers: Mapping[str, str], chunks: AsyncIterable[bytes], max_bytes: int
) -> bytes:
    """An answer's body from its `chunks`, refused when compressed (we ask for identity
    encoding, so a small answer cannot inflate) or over `max_bytes` (ResponseTooLarge), by its
    declared length or as it arrives; for any HTTP client's answer."""
    encoding = headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise ResolutionFailed(f"{url} sent a {encoding!r}-encoded body")
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise ResponseTooLarge(f"{url} body is {declared} bytes (limit {max_bytes})")
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > max_bytes:
            raise ResponseTooLarge(f"{url} body exceeds {max_bytes} bytes")
        parts.append(chunk)
    return b"".join(parts)

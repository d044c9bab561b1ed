"""The relay's DID lookups: at most `limit` reach the PLC directory at once, one per DID, each
on a keep-alive connection of its own.

A cold start asks for thousands of DID documents within seconds. httpx queues requests beyond
its connection limit inside its pool, and a request cancelled while queued there (the lookup's
deadline, a lane closing) can leave its slot taken for good (httpcore 1.0.9, encode/httpcore
#1093): once every slot leaked, every lookup timed out against a healthy PLC and the relay
rejected every new account until restarted. Here lookups wait in a semaphore of `limit`, the
client's connection limit, so httpx never queues one, and the lookup's deadline counts from
when it is sent, not from when it started to wait. Uncached lookups of one DID at once share
one request (a refresh never joins one: it must start after the change that asked for it).

httpx's own stack also costs CPU per request: its pool scans every connection (polling each
idle socket) whenever a request starts or ends, and httpcore on anyio spends ~0.9 ms per lookup
even without that: the largest cost of a cold start. PlcTransport sends the requests of the
relay's httpx client through one aiohttp session instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial

import aiohttp
import httpx

from atcore.identity.diddoc import DidDocument
from atcore.xrpc.client import http_session
from relay.validate import Resolver


class BoundedResolver:
    """`resolver` (an atcore IdentityResolver) with its uncached lookups bounded and shared."""

    def __init__(self, resolver: Resolver, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be positive")
        self.resolver = resolver
        self._slots = asyncio.Semaphore(limit)
        self._inflight: dict[str, asyncio.Future[DidDocument]] = {}  # resolve_did by DID

    def cached(self, did: str) -> DidDocument | None:
        return self.resolver.cached(did)

    async def resolve_did(self, did: str) -> DidDocument:
        doc = self.resolver.cached(did)
        if doc is not None:
            return doc
        running = self._inflight.get(did)
        if running is None:
            running = asyncio.ensure_future(self._bounded(self.resolver.resolve_did, did))
            self._inflight[did] = running
            running.add_done_callback(partial(self._settled, did))
        # A caller cancelled (its lane closing) leaves the lookup to the others.
        return await asyncio.shield(running)

    async def refresh(self, did: str) -> DidDocument:
        """A fresh lookup (never one that started before the call: it may predate a change)."""
        return await self._bounded(self.resolver.refresh, did)

    async def _bounded(
        self, lookup: Callable[[str], Awaitable[DidDocument]], did: str
    ) -> DidDocument:
        async with self._slots:
            return await lookup(did)

    def _settled(self, did: str, done: asyncio.Future[DidDocument]) -> None:
        self._inflight.pop(did, None)
        if not done.cancelled():
            done.exception()  # retrieved: every caller may have gone


class PlcTransport(httpx.AsyncBaseTransport):
    """httpx's requests sent through one aiohttp session: a keep-alive pool of `connections`
    (BoundedResolver keeps the lookups in flight to as many). httpx's own stack (httpcore on
    anyio) cost ~0.9 ms of CPU per PLC lookup, a third of the event loop's time in a cold
    start; aiohttp's costs a fraction of it (atcore.xrpc.client uses it for the same reason).
    Network failures become httpx.TransportError, so callers see httpx's errors as before."""

    def __init__(self, connections: int) -> None:
        self.connections = connections
        self._session: aiohttp.ClientSession | None = None  # made in the loop, on first use

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._session is None:
            self._session = http_session(connections=self.connections)
        try:
            answer = await self._session.request(
                request.method,
                str(request.url),
                headers=[(k.decode(), v.decode()) for k, v in request.headers.raw],
                data=await request.aread() or None,
                allow_redirects=False,
                timeout=_timeout(request),
            )
        except (aiohttp.ClientError, ValueError) as exc:
            raise httpx.TransportError(f"{request.url}: {exc!r}") from exc
        return httpx.Response(answer.status, headers=list(answer.raw_headers), stream=_Body(answer))

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


def _timeout(request: httpx.Request) -> aiohttp.ClientTimeout:
    """The httpx client's connect and read time limits for `request`, in aiohttp's terms."""
    limits = request.extensions.get("timeout", {})
    return aiohttp.ClientTimeout(sock_connect=limits.get("connect"), sock_read=limits.get("read"))


class _Body(httpx.AsyncByteStream):
    """An aiohttp response's body as an httpx stream (its connection goes back once closed)."""

    def __init__(self, answer: aiohttp.ClientResponse) -> None:
        self._answer = answer

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._answer.content.iter_any():
                yield chunk
        except aiohttp.ClientError as exc:
            raise httpx.ReadError(repr(exc)) from exc

    async def aclose(self) -> None:
        self._answer.release()

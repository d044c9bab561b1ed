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

httpx's pool also costs CPU per request in proportion to its connections squared (it scans them
all, polling each idle socket, whenever a request starts or ends): with 24 connections it was
the largest cost of a cold start. PlcTransport gives every request in flight a one-connection
pool of its own, taken from a free list, so that scan looks at one connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial

import httpx

from atcore.identity.diddoc import DidDocument
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
    """One-connection httpx transports, each carrying one request at a time (BoundedResolver
    keeps the requests in flight to `connections`; more get new transports, kept after)."""

    def __init__(self, connections: int) -> None:
        # One TLS context for all (each transport would load the CA bundle again: ~35 ms).
        self._tls = httpx.create_ssl_context()
        self._all = [self._single() for _ in range(connections)]
        self._free = list(self._all)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not self._free:
            self._all.append(self._single())
            self._free.append(self._all[-1])
        transport = self._free.pop()
        try:
            response = await transport.handle_async_request(request)
        except BaseException:
            self._free.append(transport)
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _Releasing(response.stream, partial(self._free.append, transport))
        return response

    def _single(self) -> httpx.AsyncHTTPTransport:
        return httpx.AsyncHTTPTransport(verify=self._tls, limits=httpx.Limits(max_connections=1))

    async def aclose(self) -> None:
        for transport in self._all:
            await transport.aclose()


class _Releasing(httpx.AsyncByteStream):
    """A response body that gives its transport back once closed."""

    def __init__(self, stream: httpx.AsyncByteStream, release: Callable[[], None]) -> None:
        self._stream = stream
        self._release: Callable[[], None] | None = release

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            if self._release is not None:
                self._release()
                self._release = None

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
even without that: the largest cost of a cold start. PlcClient fetches the documents through one
aiohttp session instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from functools import partial

import aiohttp

from atcore.errors import ResolutionFailed
from atcore.identity.diddoc import DidDocument
from atcore.identity.fetch import MAX_REDIRECTS, Fetched, capped_body
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


class PlcClient:
    """GETs of DID documents from the PLC directory through one aiohttp session, a keep-alive
    pool of `connections` (BoundedResolver keeps the lookups in flight to as many): the
    IdentityResolver's `plc_get`. httpx's stack (httpcore on anyio) cost ~0.9 ms of CPU per
    lookup, and httpx's client layer over an aiohttp transport still ~0.2 ms of the ~0.5 ms
    left, in a cold start the largest cost of the event loop; aiohttp alone costs a fraction
    of it (atcore.xrpc.client uses it for the same reason). Limits as
    atcore.identity.fetch.bounded_get's: one deadline for the whole answer, at most
    MAX_REDIRECTS redirects (http and https only), no compressed body, at most `max_bytes`;
    every failure is a ResolutionFailed."""

    def __init__(self, connections: int) -> None:
        self.connections = connections
        self._session: aiohttp.ClientSession | None = None  # made in the loop, on first use

    async def get(self, url: str, *, max_bytes: int, timeout: float, accept: str) -> Fetched:
        if self._session is None:
            self._session = http_session(connections=self.connections)
        try:
            async with self._session.get(
                url,
                headers={"accept": accept, "accept-encoding": "identity"},
                max_redirects=MAX_REDIRECTS + 1,  # aiohttp's counts the answer after them
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as answer:
                return Fetched(
                    answer.status,
                    await capped_body(
                        str(answer.url), answer.headers, answer.content.iter_any(), max_bytes
                    ),
                    str(answer.url),
                )
        except TimeoutError as exc:
            raise ResolutionFailed(f"no complete answer from {url} within {timeout}s") from exc
        except aiohttp.TooManyRedirects as exc:
            raise ResolutionFailed(f"more than {MAX_REDIRECTS} redirects fetching {url}") from exc
        except (aiohttp.ClientError, ValueError) as exc:
            raise ResolutionFailed(f"fetching {url} failed: {exc!r}") from exc

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

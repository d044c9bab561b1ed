"""Handles of the accounts the index sees (spec-handle.md, spec-sync.md "#identity"): a DID
seen for the first time, or named by an #identity event, is resolved beside the firehose with
bounded concurrency; its handle is kept only when it and the DID document point at each other
(atcore.identity.resolver.resolve_identity), else it is shown as `handle.invalid`.

In dev mode a `.test` or `.localhost` handle, which neither DNS nor HTTPS can reach, is asked of
the account's own PDS (`/.well-known/atproto-did` with the handle as `Host`), as the official
dev environment verifies it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Final

import httpx

from appview.changes import Change, SetHandle
from appview.records import now
from atcore.errors import IdentityError, InvalidSyntax
from atcore.identity.resolver import IdentityResolver
from skyloft.tasks import cancel_and_wait

log = logging.getLogger(__name__)

WORKERS: Final = 4
DEV_TLDS: Final = ("test", "localhost")
MAX_DID_BYTES: Final = 2048
# DIDs remembered as already resolved; beyond this the oldest are resolved again if seen.
MAX_KNOWN: Final = 100_000


class Identities:
    def __init__(
        self,
        resolver: IdentityResolver,
        queue: Callable[[list[Change]], None],
        http: httpx.AsyncClient,
        dev_mode: bool = False,
    ) -> None:
        self.resolver = resolver
        self.http = http
        self.dev_mode = dev_mode
        self._queue_changes = queue
        self._known: dict[str, None] = {}
        self._todo: asyncio.Queue[tuple[str, bool]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._work()) for _ in range(WORKERS)]

    async def close(self) -> None:
        await cancel_and_wait(self._tasks)

    def see(self, did: str) -> None:
        """A DID is active in the stream: resolve its handle once."""
        if did in self._known:
            return
        self._remember(did)
        self._todo.put_nowait((did, False))

    def refresh(self, did: str) -> None:
        """An #identity event: the DID document or handle may have changed."""
        self._remember(did)
        self._todo.put_nowait((did, True))

    def _remember(self, did: str) -> None:
        self._known[did] = None
        if len(self._known) > MAX_KNOWN:
            del self._known[next(iter(self._known))]

    async def _work(self) -> None:
        while True:
            did, fresh = await self._todo.get()
            await self._resolve(did, fresh)

    async def _resolve(self, did: str, fresh: bool) -> None:
        if fresh:
            self.resolver.invalidate(did)
        try:
            handle = await verified_handle(self.resolver, self.http, did, self.dev_mode)
        except (IdentityError, InvalidSyntax) as exc:
            log.info("cannot resolve %s: %s", did, exc)
            return
        self._queue_changes([SetHandle(did, handle, now())])


async def verified_handle(
    resolver: IdentityResolver, http: httpx.AsyncClient, did: str, dev_mode: bool
) -> str | None:
    """The DID's handle if it resolves back to the DID, else None."""
    identity = await resolver.resolve_identity(did)
    if identity.handle is not None:
        return identity.handle
    claimed, pds = identity.doc.handle, identity.doc.pds_endpoint
    if not dev_mode or claimed is None or pds is None or claimed.rpartition(".")[2] not in DEV_TLDS:
        return None
    try:
        response = await http.get(f"{pds}/.well-known/atproto-did", headers={"host": claimed})
    except httpx.HTTPError:
        return None
    answer = response.content[:MAX_DID_BYTES].decode(errors="replace").strip()
    return claimed if response.status_code == 200 and answer == did else None

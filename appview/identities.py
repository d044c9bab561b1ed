"""Handles of the accounts the index sees (spec-handle.md, spec-sync.md "#identity"): a DID
seen for the first time, or named by an #identity event, is resolved beside the firehose with
bounded concurrency; its handle is kept only when it and the DID document point at each other
(atcore.identity.resolver.resolve_identity), else it is shown as `handle.invalid`.

In dev mode a `.test` handle, which neither DNS nor HTTPS can reach, is asked of the account's
own PDS (`/.well-known/atproto-did` with the handle as `Host`), as the official dev environment
verifies it: the resolver's `dev_handle_pds` fallback (atcore.identity.resolver)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Final

import httpx

from appview.changes import Change, SetHandle
from appview.config import AppviewConfig
from atcore.errors import IdentityError, InvalidSyntax
from atcore.identity.resolver import IdentityResolver
from atcore.syntax.datetime import now_iso
from atcore.tasks import cancel_and_wait

log = logging.getLogger(__name__)

WORKERS: Final = 4
# DIDs remembered as already resolved; beyond this the oldest are resolved again if seen.
MAX_KNOWN: Final = 100_000


def resolver(
    config: AppviewConfig, http: httpx.AsyncClient, guarded: httpx.AsyncClient
) -> IdentityResolver:
    """The appview's resolver: DID documents from the PLC, user-aimed hosts through `guarded`."""
    return IdentityResolver(
        config.plc_url,
        http,
        guarded_http=guarded,
        allow_private=config.dev_mode,
        dev_handle_pds=_claimed_handles_only if config.dev_mode else None,
    )


async def _claimed_handles_only(handle: str) -> str | None:
    """Dev mode: a `.test` handle a DID document claims is verified at that document's own PDS
    (atcore.identity's fallback); a bare handle names no PDS of its own here."""
    return None


async def handle_change(resolver: IdentityResolver, did: str) -> SetHandle | None:
    """The DID's handle when it and the DID document point at each other, else None shown as
    handle.invalid; no change when the DID does not resolve."""
    try:
        handle = (await resolver.resolve_identity(did)).handle
    except (IdentityError, InvalidSyntax) as exc:
        log.info("cannot resolve %s: %s", did, exc)
        return None
    return SetHandle(did, handle, now_iso())


class Identities:
    def __init__(
        self,
        resolver: IdentityResolver,
        queue: Callable[[list[Change]], None],
    ) -> None:
        self.resolver = resolver
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
        change = await handle_change(self.resolver, did)
        if change is not None:
            self._queue_changes([change])

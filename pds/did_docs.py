"""The DID documents the PDS shows its users (createAccount, createSession, getSession, ...).

Clients get the directory's own presentation of a did:plc (`/data` rendered by
`atcore.identity.plc_data`), which getSession used to fetch on every call: a PLC round trip and
~1.5 ms of CPU per session check. Each rendered document is now kept beside the resolver's
parsed copy it was fetched with, and served only while the resolver still holds that same copy.
So it follows the resolver's cache exactly: its expiry (bskydocs-resolving-identities.md), and
every `invalidate`/`refresh` the PDS makes when it changes an identity (PLC operations, handle
updates, activation, imports) — one invalidation path, not two.
"""

from __future__ import annotations

import time
from typing import Any

from atcore.errors import IdentityError, InvalidSyntax
from atcore.identity.cache import TtlCache
from atcore.identity.diddoc import DidDocument
from atcore.identity.plc_client import PlcClient
from atcore.identity.plc_data import did_document
from atcore.identity.resolver import IdentityResolver

# Rendered documents kept; the resolver bounds how long each stays valid.
CACHE_SIZE = 10_000
CACHE_TTL = 24 * 3600.0


class DidDocViews:
    """did:plc documents as clients see them, cached while the resolver's copy is unchanged."""

    def __init__(self, resolver: IdentityResolver, plc: PlcClient, size: int = CACHE_SIZE) -> None:
        self._resolver = resolver
        self._plc = plc
        self._views: TtlCache[str, tuple[DidDocument, dict[str, Any]]] = TtlCache(
            size, CACHE_TTL, time.monotonic
        )

    async def get(self, did: str) -> dict[str, Any] | None:
        """The document of `did` (did:plc only), or None when the directory cannot give it."""
        if not did.startswith("did:plc:"):
            return None
        try:
            current = await self._resolver.resolve_did(did)
            cached = self._views.get(did)
            if cached is not None and cached[0] is current:
                return cached[1]
            view = did_document(did, await self._plc.get_document_data(did))
        except (IdentityError, InvalidSyntax, KeyError, TypeError, AttributeError):
            return None
        self._views.put(did, (current, view))
        return view

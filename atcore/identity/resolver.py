"""DID and handle resolution with bidirectional verification (spec-did.md, spec-handle.md).

Caching follows bskydocs-resolving-identities.md: successful lookups are kept for `cache_ttl`
seconds; callers re-resolve early with `refresh(did)` when a signature fails or an #identity
event arrives.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from functools import partial
from types import TracebackType
from typing import Final, NamedTuple

import httpx

from atcore.errors import (
    DidDeactivated,
    DidNotFound,
    HandleNotFound,
    IdentityError,
    InvalidDidDocument,
    ResolutionFailed,
    UnsupportedDid,
)
from atcore.identity.cache import TtlCache
from atcore.identity.diddoc import DidDocument, parse_did_document
from atcore.identity.dnstxt import DnsTxtLookup, TxtLookup, parse_atproto_txt
from atcore.identity.fetch import DocumentGet, Fetched, bounded_get
from atcore.identity.netguard import AddressGuard
from atcore.identity.pinned import guarded_client
from atcore.identity.plc_client import parse_plc_did
from atcore.syntax.did import Did, is_valid_did, parse_did
from atcore.syntax.handle import (
    INVALID_HANDLE,
    Handle,
    is_disallowed_tld,
    is_valid_handle,
    parse_handle,
)

log = logging.getLogger(__name__)

MAX_DOC_BYTES: Final = 128 * 1024
# A DID is at most 2048 characters; leave room for the whitespace clients must tolerate.
MAX_WELL_KNOWN_BYTES: Final = 4096
# Hostname-level did:web only; the port separator is the percent-encoded colon of the spec.
_WEB_RE: Final = re.compile(r"did:web:([a-zA-Z0-9.-]+)(?:%3[aA]([0-9]{1,5}))?")
_DEV_TLDS: Final = ("test", "localhost")
_DOC_ACCEPT: Final = "application/did+ld+json, application/json"
_ANY: Final = frozenset({"http", "https"})

# Names the PDS to ask for a handle that DNS and HTTPS cannot reach (dev mode), or None.
PdsForHandle = Callable[[Handle], Awaitable[str | None]]


class Identity(NamedTuple):
    did: Did
    handle: Handle | None  # None unless the DID document and the handle point at each other
    doc: DidDocument

    @property
    def display_handle(self) -> Handle:
        return INVALID_HANDLE if self.handle is None else self.handle


class IdentityResolver:
    """Resolves did:plc via a PLC directory, did:web over HTTPS, handles via DNS and HTTPS.

    `http` reaches the PLC directory (operator configuration), unless `plc_get` fetches its
    documents instead (a leaner client of the caller's: a relay's cold start looks up thousands
    a second); did:web documents and handle well-knowns, which users aim, go through
    `guarded_http` (by default a guarded_client of its own). `allow_private` is development
    mode: private and loopback hosts, `localhost` did:web with a port, and `.test`/`.localhost`
    names fetched over plain http.

    `dev_handle_pds` (development mode only) verifies handles that neither DNS nor HTTPS reach,
    such as `.test` ones, at a PDS, as the official dev environment does: its
    `/.well-known/atproto-did` is asked with the handle as the Host header. Verifying the handle
    a DID document claims asks that document's own PDS; a bare handle asks the PDS that
    `dev_handle_pds(handle)` names (the caller knows its network; None skips the fallback).
    """

    def __init__(
        self,
        plc_url: str,
        http: httpx.AsyncClient | None = None,
        *,
        guarded_http: httpx.AsyncClient | None = None,
        timeout: float = 3.0,
        max_doc_bytes: int = MAX_DOC_BYTES,
        cache_ttl: float = 3600.0,
        cache_size: int = 10_000,
        allow_private: bool = False,
        clock: Callable[[], float] = time.monotonic,
        txt_lookup: TxtLookup | None = None,
        dev_handle_pds: PdsForHandle | None = None,
        plc_get: DocumentGet | None = None,
    ) -> None:
        if dev_handle_pds is not None and not allow_private:
            raise ValueError("dev_handle_pds is a development-mode option: needs allow_private")
        self.plc_url = plc_url.rstrip("/")
        # A client of our own for the PLC directory only when none was given, closed with us.
        self._owned_http: httpx.AsyncClient | None = None
        if plc_get is None:
            if http is None:
                http = self._owned_http = httpx.AsyncClient()
            plc_get = partial(_plc_over, http)
        self._plc_get: DocumentGet = plc_get
        self._own_guarded = guarded_http is None
        self._guarded = (
            guarded_http
            if guarded_http is not None
            else guarded_client(AddressGuard(allow_private=allow_private))
        )
        self._timeout = timeout
        self._max_doc_bytes = max_doc_bytes
        self._allow_private = allow_private
        self._txt_lookup = txt_lookup if txt_lookup is not None else DnsTxtLookup(timeout)
        self._dev_handle_pds = dev_handle_pds
        self._docs: TtlCache[Did, DidDocument] = TtlCache(cache_size, cache_ttl, clock)
        self._handles: TtlCache[Handle, Did] = TtlCache(cache_size, cache_ttl, clock)

    async def aclose(self) -> None:
        if self._owned_http is not None:
            await self._owned_http.aclose()
        if self._own_guarded:
            await self._guarded.aclose()

    async def __aenter__(self) -> IdentityResolver:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # --- DIDs ---

    async def resolve_did(self, did: str) -> DidDocument:
        """The current DID document; InvalidSyntax, UnsupportedDid or an IdentityError."""
        parsed = parse_did(did)
        cached = self._docs.get(parsed)
        if cached is not None:
            return cached
        doc = await self._fetch_did(parsed)
        self._docs.put(parsed, doc)
        return doc

    def cached(self, did: str) -> DidDocument | None:
        """The document `resolve_did` would answer without a lookup, if any."""
        return self._docs.get(Did(did))

    def invalidate(self, did: str) -> None:
        """Forget `did`'s document and the handle it claimed, so both are looked up again."""
        doc = self._docs.get(Did(did))
        self._docs.pop(Did(did))
        if doc is not None and doc.handle is not None:
            self._handles.pop(doc.handle)

    async def refresh(self, did: str) -> DidDocument:
        self.invalidate(did)
        return await self.resolve_did(did)

    async def _fetch_did(self, did: Did) -> DidDocument:
        if did.startswith("did:plc:"):
            url = f"{self.plc_url}/{parse_plc_did(did)}"
            fetched = await self._plc_get(
                url, max_bytes=self._max_doc_bytes, timeout=self._timeout, accept=_DOC_ACCEPT
            )
        elif did.startswith("did:web:"):
            url = self._did_web_url(did)
            fetched = await bounded_get(
                self._guarded,
                url,
                max_bytes=self._max_doc_bytes,
                timeout=self._timeout,
                schemes=self._schemes(),
                accept=_DOC_ACCEPT,
            )
        else:
            raise UnsupportedDid(f"unsupported DID method: {did[:80]}")
        if fetched.status == 404:
            raise DidNotFound(f"{did} is not registered ({url})")
        if fetched.status == 410:
            raise DidDeactivated(f"{did} is deactivated or tombstoned")
        if not 200 <= fetched.status < 300:
            raise ResolutionFailed(f"resolving {did}: {url} answered {fetched.status}")
        try:
            doc = json.loads(fetched.body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidDidDocument(f"DID document of {did} is not JSON: {exc}") from exc
        return parse_did_document(doc, did)

    def _did_web_url(self, did: Did) -> str:
        match = _WEB_RE.fullmatch(did)
        if match is None:
            raise UnsupportedDid(f"only hostname-level did:web is supported: {did[:80]}")
        host, port = match.group(1).lower(), match.group(2)
        if host == "localhost" and self._allow_private:
            authority = host if port is None else f"{host}:{port}"
            return f"http://{authority}/.well-known/did.json"
        if port is not None:
            raise UnsupportedDid(f"did:web ports are only allowed for localhost in dev mode: {did}")
        if not self._usable_hostname(host):
            raise UnsupportedDid(f"did:web hostname {host!r} cannot be resolved")
        return f"{self._scheme_for(host)}://{host}/.well-known/did.json"

    # --- handles ---

    async def resolve_handle(self, handle: str) -> Did | None:
        """The DID a handle points at (not yet verified against the DID document), or None.

        DNS TXT and HTTPS well-known run concurrently. DNS wins when it has an answer, as the
        spec prefers it on conflict; otherwise the well-known answer is used.
        """
        return await self._resolve_handle(parse_handle(handle), None)

    async def _resolve_handle(self, handle: Handle, own_pds: str | None) -> Did | None:
        if not self._usable_hostname(handle):
            return None
        cached = self._handles.get(handle)
        if cached is not None:
            return cached
        http_task = asyncio.create_task(self._handle_via_http(handle))
        try:
            did = await self._handle_via_dns(handle)
            if did is None:
                did = await http_task
        finally:
            http_task.cancel()
        if did is None and self._dev_handle_pds is not None:
            pds = own_pds if own_pds is not None else await self._dev_handle_pds(handle)
            if pds is not None:
                did = await self._well_known(f"{pds.rstrip('/')}/.well-known/atproto-did", handle)
        if did is not None:
            self._handles.put(handle, did)
        return did

    async def _handle_via_dns(self, handle: Handle) -> Did | None:
        name = f"_atproto.{handle}"
        if len(name) > 253:
            return None
        try:
            async with asyncio.timeout(self._timeout):
                return parse_atproto_txt(await self._txt_lookup(name))
        except (OSError, TimeoutError, IdentityError) as exc:
            log.debug("DNS TXT lookup of %s failed: %r", name, exc)
            return None

    async def _handle_via_http(self, handle: Handle) -> Did | None:
        return await self._well_known(
            f"{self._scheme_for(handle)}://{handle}/.well-known/atproto-did"
        )

    async def _well_known(self, url: str, host: Handle | None = None) -> Did | None:
        """The DID a `/.well-known/atproto-did` answers with (asked as `host` if given)."""
        try:
            fetched = await bounded_get(
                self._guarded,
                url,
                max_bytes=MAX_WELL_KNOWN_BYTES,
                timeout=self._timeout,
                schemes=self._schemes(),
                accept="text/plain",
                host=host,
            )
        except IdentityError as exc:
            log.debug("well-known lookup at %s (host %s) failed: %r", url, host, exc)
            return None
        if not 200 <= fetched.status < 300:
            return None
        try:
            text = fetched.body.decode("ascii").strip()
        except UnicodeDecodeError:
            return None
        return Did(text) if is_valid_did(text) else None

    # --- both directions ---

    async def resolve_identity(self, handle_or_did: str) -> Identity:
        """Resolve either identifier; the handle is kept only if it is verified both ways."""
        if handle_or_did.startswith("did:"):
            doc = await self.resolve_did(handle_or_did)
            claimed = doc.handle
            if claimed is None:
                return Identity(doc.did, None, doc)
            verified = await self._resolve_handle(claimed, doc.pds_endpoint) == doc.did
            return Identity(doc.did, claimed if verified else None, doc)
        handle = parse_handle(handle_or_did)
        did = await self.resolve_handle(handle)
        if did is None:
            raise HandleNotFound(f"handle {handle} does not resolve to a DID")
        doc = await self.resolve_did(did)
        return Identity(doc.did, handle if doc.handle == handle else None, doc)

    # --- policy ---

    def _usable_hostname(self, host: str) -> bool:
        if self._allow_private and host.rpartition(".")[2] in _DEV_TLDS:
            return is_valid_handle(host)
        return is_valid_handle(host) and not is_disallowed_tld(host)

    def _scheme_for(self, host: str) -> str:
        dev_host = host == "localhost" or host.rpartition(".")[2] in _DEV_TLDS
        return "http" if self._allow_private and dev_host else "https"

    def _schemes(self) -> frozenset[str]:
        return _ANY if self._allow_private else frozenset({"https"})


async def _plc_over(
    http: httpx.AsyncClient, url: str, *, max_bytes: int, timeout: float, accept: str
) -> Fetched:
    """A GET of a DID document from the PLC directory: operator configuration, not user input,
    so no address guard."""
    return await bounded_get(
        http, url, max_bytes=max_bytes, timeout=timeout, schemes=_ANY, accept=accept
    )

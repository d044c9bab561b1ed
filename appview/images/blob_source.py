"""A blob's bytes from its account's PDS: `com.atproto.sync.getBlob` through the SSRF guard,
size-bounded, checked against the CID (spec-blob.md; the reference appview's blob resolver
answers the same statuses: 404 for a blob or origin that is not there or not what its CID
says, 502 for an upstream failure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import httpx

from atcore.cid import CID, cid_for_raw
from atcore.errors import (
    DidDeactivated,
    DidNotFound,
    IdentityError,
    InvalidDidDocument,
    ResponseTooLarge,
    UnsafeAddress,
    UnsupportedDid,
)
from atcore.identity.fetch import bounded_get
from atcore.identity.resolver import IdentityResolver
from atcore.syntax.did import Did
from atcore.xrpc.errors import InvalidRequest, NotFound, XrpcError

# Far above the 1,000,000-byte images app.bsky records may reference, far below memory trouble.
DEFAULT_MAX_BLOB_BYTES: Final = 16 * 1024 * 1024
DEFAULT_TIMEOUT: Final = 15.0


@dataclass(frozen=True)
class BlobSource:
    """Where blobs come from. `http` must be a `guarded_client` (atcore.identity.pinned): a PDS
    endpoint is whatever a DID document says, so every connection goes to an address its
    AddressGuard approved (public ones, unless it allows private for dev mode). `dev_mode`
    also admits plain-http PDSes."""

    resolver: IdentityResolver
    http: httpx.AsyncClient
    dev_mode: bool = False
    max_bytes: int = DEFAULT_MAX_BLOB_BYTES
    timeout: float = DEFAULT_TIMEOUT

    async def fetch(self, did: Did, cid: CID) -> bytes:
        """The blob's bytes, verified; an XrpcError (404, 400 or 502) says why not."""
        url = httpx.URL(f"{await self._pds_of(did)}/xrpc/com.atproto.sync.getBlob")
        url = url.copy_with(params={"did": did, "cid": cid.encode()})
        try:
            fetched = await bounded_get(
                self.http,
                str(url),
                max_bytes=self.max_bytes,
                timeout=self.timeout,
                schemes=frozenset({"http", "https"} if self.dev_mode else {"https"}),
            )
        except ResponseTooLarge as exc:
            raise InvalidRequest(f"blob is over {self.max_bytes} bytes", "BlobTooLarge") from exc
        except UnsafeAddress as exc:
            raise NotFound(f"PDS of {did} is not reachable: {exc}", "OriginNotFound") from exc
        except IdentityError as exc:
            raise XrpcError(502, "UpstreamFailure", f"fetching blob failed: {exc}") from exc
        if 400 <= fetched.status < 500:
            raise NotFound("Blob not found", "BlobNotFound")
        if fetched.status != 200:
            raise XrpcError(502, "UpstreamFailure", f"PDS answered getBlob with {fetched.status}")
        if cid_for_raw(fetched.body) != cid:
            raise NotFound(
                f"PDS of {did} served bytes that do not match {cid.encode()}", "BlobNotFound"
            )
        return fetched.body

    async def _pds_of(self, did: Did) -> str:
        try:
            doc = await self.resolver.resolve_did(did)
        except UnsupportedDid as exc:
            raise InvalidRequest(str(exc), "InvalidDid") from exc
        except (DidNotFound, DidDeactivated, InvalidDidDocument) as exc:
            raise NotFound(f"Origin not found: {exc}", "OriginNotFound") from exc
        except IdentityError as exc:
            raise XrpcError(502, "UpstreamFailure", f"resolving {did} failed: {exc}") from exc
        endpoint = doc.pds_endpoint
        # Outside dev mode only https PDSes serve blobs (and only at public addresses).
        if endpoint is None or not (self.dev_mode or endpoint.startswith("https://")):
            raise NotFound(f"Origin not found: {did} names no usable PDS", "OriginNotFound")
        return endpoint.rstrip("/")

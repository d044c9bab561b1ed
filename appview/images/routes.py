"""`GET /img/{preset}/plain/{did}/{cid}@{format}`: the appview's image service, as the reference
appview serves it (cache, else fetch the blob, render, cache; `x-cache: hit|miss`; a year of
`cache-control`, since a CID names its bytes for ever)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from appview.images.blob_source import DEFAULT_MAX_BLOB_BYTES, BlobSource
from appview.images.cache import ImageCache
from appview.images.presets import FORMATS, ImageRequest, parse_request
from appview.images.transform import DEFAULT_MAX_PIXELS, render
from atcore.identity.resolver import IdentityResolver
from atcore.xrpc.failures import error_response

CACHE_CONTROL = "public, max-age=31536000"


def image_routes(
    *,
    cache_dir: Path,
    cache_max_bytes: int,
    resolver: IdentityResolver,
    http: httpx.AsyncClient,
    dev_mode: bool,
    max_blob_bytes: int = DEFAULT_MAX_BLOB_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    workers: int = 2,
) -> list[Route]:
    """The image routes, for an appview that serves its own images (with BSKY_CDN_URL set the
    CDN does, and these are not mounted). `http` fetches from PDSes and must be a
    `guarded_client(AddressGuard(allow_private=dev_mode))` (atcore.identity.pinned); outside
    `dev_mode` only https PDSes are asked. `workers` bounds concurrent renders, each of which
    holds a decoded image in memory."""
    service = _ImageService(
        ImageCache(cache_dir, cache_max_bytes),
        BlobSource(resolver, http, dev_mode=dev_mode, max_bytes=max_blob_bytes),
        max_pixels,
        asyncio.Semaphore(workers),
    )
    return [Route("/img/{preset}/plain/{did}/{cid}", service.serve, methods=["GET", "HEAD"])]


@dataclass(frozen=True)
class _ImageService:
    cache: ImageCache
    blobs: BlobSource
    max_pixels: int
    workers: asyncio.Semaphore
    # Cache key -> the render under way: concurrent requests for one rendition share it.
    pending: dict[str, asyncio.Future[bytes]] = field(default_factory=dict)

    async def serve(self, request: Request) -> Response:
        params = request.path_params
        try:
            wanted = parse_request(params["preset"], params["did"], params["cid"])
            cached = await self.cache.get(wanted.cache_key)
            if cached is not None:
                return _image(cached, wanted, "hit")
            return _image(await self._rendition(wanted), wanted, "miss")
        except Exception as exc:  # every failure answers as an XRPC error body
            return error_response(exc, "image service", request.scope)

    async def _rendition(self, wanted: ImageRequest) -> bytes:
        key = wanted.cache_key
        pending = self.pending.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._render_and_cache(wanted))
            self.pending[key] = pending
            pending.add_done_callback(lambda _: self.pending.pop(key, None))
        # A client that goes away does not cancel the render the others wait for.
        return await asyncio.shield(pending)

    async def _render_and_cache(self, wanted: ImageRequest) -> bytes:
        data = await self.blobs.fetch(wanted.did, wanted.cid)
        async with self.workers:
            rendered = await asyncio.to_thread(
                render, data, wanted.preset, wanted.format, max_pixels=self.max_pixels
            )
        await self.cache.put(wanted.cache_key, rendered)
        return rendered


def _image(data: bytes, wanted: ImageRequest, cache: str) -> Response:
    headers = {
        "cache-control": CACHE_CONTROL,
        "x-cache": cache,
        "x-content-type-options": "nosniff",
    }
    return Response(data, media_type=FORMATS[wanted.format][1], headers=headers)

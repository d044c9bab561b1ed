"""`create_app(config)`: the appview as a Starlette app (STYLE.md #9)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from appview import identities, well_known
from appview.api import (
    app_bsky_actor,
    app_bsky_feed,
    app_bsky_feed_generators,
    app_bsky_feed_search,
    app_bsky_graph,
    app_bsky_graph_lists,
    app_bsky_notification,
    app_bsky_notification_prefs,
    com_atproto_repo,
)
from appview.config import AppviewConfig
from appview.context import AppviewContext
from appview.db import open_database
from appview.images.routes import image_routes
from appview.ingest import Ingest
from atcore.identity.netguard import AddressGuard
from atcore.identity.pinned import guarded_client
from atcore.lexicon import Catalog
from atcore.service_auth import ServiceTokens
from atcore.xrpc.cors import cors_middleware
from atcore.xrpc.failures import http_exception
from atcore.xrpc.router import XrpcRouter
from atcore.xrpc.server import mount

HTTP_TIMEOUT = 10.0
GROUPS = (
    app_bsky_actor.xrpc,
    app_bsky_feed.xrpc,
    app_bsky_feed_search.xrpc,
    app_bsky_graph.xrpc,
    app_bsky_graph_lists.xrpc,
    app_bsky_notification.xrpc,
    app_bsky_feed_generators.xrpc,
    app_bsky_notification_prefs.xrpc,
    com_atproto_repo.xrpc,
)


async def health(request: Request) -> Response:
    return JSONResponse({"version": "skyloft-appview"})


def create_app(
    config: AppviewConfig, *, validate_output: bool = False, backoff_base: float = 1.0
) -> Starlette:
    """The appview app; `validate_output` checks JSON responses against the lexicons (tests);
    `backoff_base` is the first firehose reconnection delay in seconds (tests shorten it)."""
    catalog = Catalog.load_builtin()
    router = XrpcRouter(catalog, GROUPS, validate_output=validate_output)

    # Built here, not in the lifespan, because the image routes need them; closed by it.
    http = httpx.AsyncClient(timeout=HTTP_TIMEOUT, follow_redirects=False)
    guarded = guarded_client(AddressGuard(allow_private=config.dev_mode))
    resolver = identities.resolver(config, http, guarded)
    images = (
        image_routes(
            cache_dir=config.image_cache_dir,
            cache_max_bytes=config.image_cache_max_bytes,
            resolver=resolver,
            http=guarded,
            dev_mode=config.dev_mode,
        )
        if config.cdn_url is None
        else []
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            stack.push_async_callback(http.aclose)
            stack.push_async_callback(guarded.aclose)
            db = open_database(config)
            await db.open()
            stack.push_async_callback(db.close)
            ingest = None
            if config.repo_provider is not None:
                ingest = Ingest(
                    db,
                    config.repo_provider,
                    resolver,
                    catalog,
                    guarded,
                    trust_relay=config.trust_relay,
                    workers=config.index_workers,
                    backoff_base=backoff_base,
                )
            key = well_known.load_signing_key(config.signing_key_path)
            app.state.ctx = AppviewContext(
                config, db, resolver, http, key, ingest, catalog, guarded, ServiceTokens(resolver)
            )
            if ingest is not None:
                await ingest.start()
                stack.push_async_callback(ingest.close)
            yield

    return Starlette(
        routes=[*well_known.ROUTES, Route("/xrpc/_health", health), *images, *mount(router)],
        middleware=[cors_middleware()],
        lifespan=lifespan,
        exception_handlers={HTTPException: http_exception},
    )

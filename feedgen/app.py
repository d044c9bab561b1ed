"""`create_app(config, feed)`: a feed generator as a Starlette app (STYLE.md #9), with the
`did:web` document that names it (bskydocs-starter-custom-feeds.md, "did:web")."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from atcore.identity.netguard import AddressGuard
from atcore.identity.pinned import guarded_client
from atcore.identity.resolver import IdentityResolver
from atcore.lexicon import Catalog
from atcore.xrpc.cors import cors_middleware
from atcore.xrpc.failures import http_exception
from atcore.xrpc.router import XrpcRouter
from atcore.xrpc.server import mount
from feedgen.api import xrpc
from feedgen.changes import Source
from feedgen.config import FeedgenConfig
from feedgen.firehose import FirehoseSource
from feedgen.indexer import Indexer
from feedgen.jetstream_source import JetstreamSource
from feedgen.sdk import Feed
from feedgen.store import FeedStore

HTTP_TIMEOUT = 10.0


@dataclass(frozen=True)
class FeedgenContext:
    config: FeedgenConfig
    feed: Feed
    feed_uri: str
    service_did: str
    store: FeedStore
    resolver: IdentityResolver
    indexer: Indexer


class FeedModuleError(ValueError):
    """The module named to `serve` cannot be imported or defines no `feed`."""


def load_feed(name: str) -> Feed:
    """The `feed` a module defines: `name` is a dotted module name or a path to a .py file."""
    try:
        if name.endswith(".py"):
            path = Path(name)
            spec = importlib.util.spec_from_file_location(path.stem, path)
            if spec is None or spec.loader is None:
                raise FeedModuleError(f"cannot load {name}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[path.stem] = module
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(name)
    except (ImportError, OSError) as exc:
        raise FeedModuleError(f"cannot import {name}: {exc}") from exc
    feed = getattr(module, "feed", None)
    if not isinstance(feed, Feed):
        raise FeedModuleError(f"{name} defines no `feed = Feed(...)`")
    if feed.selector is None and feed.personaliser is None:
        raise FeedModuleError(f"{name}: the feed has no @feed.select or @feed.for_viewer")
    return feed


def source_for(config: FeedgenConfig, feed: Feed, resolver: IdentityResolver) -> Source:
    if config.jetstream_url is not None:
        return JetstreamSource(config.jetstream_url, feed.collections)
    if config.nats_url is not None:
        from feedgen.nats_source import NatsSource  # nats-py only when reading NATS

        return NatsSource(
            config.nats_url, config.nats_stream, config.nats_subject, feed.collections
        )
    return FirehoseSource(
        config.relay_url, feed.collections, None if config.trust_relay else resolver
    )


def open_store(config: FeedgenConfig, source: str) -> FeedStore:
    """SQLite in the data directory, or PostgreSQL when FEEDGEN_DATABASE_URL names it."""
    if config.database_url is None:
        return FeedStore.sqlite(config.db_path, source)
    return FeedStore.postgres(config.database_url, source)


def did_document(config: FeedgenConfig) -> dict[str, Any]:
    return {
        "@context": ["https://www.w3.org/ns/did/v1"],
        "id": config.service_did,
        "service": [
            {
                "id": "#bsky_fg",
                "type": "BskyFeedGenerator",
                "serviceEndpoint": config.service_url,
            }
        ],
    }


def create_app(
    config: FeedgenConfig, feed: Feed, *, validate_output: bool = False, backoff_base: float = 1.0
) -> Starlette:
    router = XrpcRouter(Catalog.load_builtin(), [xrpc], validate_output=validate_output)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            http = httpx.AsyncClient(timeout=HTTP_TIMEOUT, follow_redirects=False)
            stack.push_async_callback(http.aclose)
            # did:web issuers name their own hosts: those fetches go through the guard.
            guarded = guarded_client(AddressGuard(allow_private=config.dev_mode))
            stack.push_async_callback(guarded.aclose)
            resolver = IdentityResolver(
                config.plc_url, http, guarded_http=guarded, allow_private=config.dev_mode
            )
            source = source_for(config, feed, resolver)
            store = open_store(config, source.name)
            await store.open()
            stack.push_async_callback(store.close)
            indexer = Indexer(feed, source, store, backoff_base=backoff_base)
            await indexer.start()
            stack.push_async_callback(indexer.close)
            app.state.ctx = FeedgenContext(
                config,
                feed,
                config.feed_uri(feed.name),
                config.service_did,
                store,
                resolver,
                indexer,
            )
            yield

    async def well_known_did(request: Request) -> Response:
        if not config.service_did.startswith("did:web:"):
            return JSONResponse({"error": "NotFound", "message": "not a did:web"}, 404)
        return JSONResponse(did_document(config))

    async def home(request: Request) -> Response:
        stats = app.state.ctx.indexer.stats
        return JSONResponse(
            {
                "feed": app.state.ctx.feed_uri,
                "did": config.service_did,
                "position": stats.position,
                "events": stats.events,
                "connected": stats.connected,
            }
        )

    app = Starlette(
        routes=[
            Route("/", home),
            Route("/.well-known/did.json", well_known_did),
            *mount(router),
        ],
        middleware=[cors_middleware()],
        lifespan=lifespan,
        exception_handlers={HTTPException: http_exception},
    )
    return app

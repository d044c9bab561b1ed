"""`create_app(config)`: Jetstream as a Starlette app (STYLE.md #9)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute

from atcore.identity.resolver import IdentityResolver
from atcore.xrpc.failures import http_exception
from jetstream.config import JetstreamConfig
from jetstream.context import JetstreamContext
from jetstream.ingest import Ingest
from jetstream.log import EventLog
from jetstream.subscribe import subscribe
from jetstream.subscribe_events import NSID, get_zstd_dictionary, subscribe_events

HTTP_TIMEOUT = 10.0


async def status(request: Request) -> JSONResponse:
    """What the service is doing: the upstream, the log's extent, events in and dropped."""
    ctx: JetstreamContext = request.app.state.ctx
    events, stats = ctx.events, ctx.ingest.stats
    return JSONResponse(
        {
            "service": "jetstream",
            "upstream": ctx.config.ws_url,
            "connected": stats.connected,
            "upstreamCursor": ctx.ingest.cursor,
            "framesIn": stats.frames,
            "eventsOut": stats.events,
            "dropped": stats.dropped,
            "head": events.head,
            "oldestRetained": events.trimmed,
            "diskBytes": events.disk_bytes,
            "natsPublished": None if ctx.nats is None else ctx.nats.published,
        }
    )


def create_app(config: JetstreamConfig, *, backoff_base: float = 1.0) -> Starlette:
    """The Jetstream app; `backoff_base` is the first reconnection delay (tests shorten it)."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            events = EventLog(
                config.db_path,
                ttl=config.event_ttl,
                max_bytes=config.max_log_bytes,
                memory_bytes=config.memory_bytes,
            )
            await events.open()
            stack.push_async_callback(events.close)
            resolver = None
            if not config.trust_relay:
                http = httpx.AsyncClient(timeout=HTTP_TIMEOUT, follow_redirects=False)
                stack.push_async_callback(http.aclose)
                resolver = IdentityResolver(config.plc_url, http, allow_private=config.dev_mode)
            cursor = events.upstream_cursor
            if config.override_relay_cursor is not None:
                cursor = config.override_relay_cursor or None
            ingest = Ingest(
                config.ws_url, events, resolver, cursor=cursor, backoff_base=backoff_base
            )
            publisher = None
            if config.nats_url is not None:
                from jetstream.nats_publish import NatsPublisher

                publisher = NatsPublisher(
                    config.nats_url,
                    events,
                    stream=config.nats_stream,
                    subject=config.nats_subject,
                    ttl=config.event_ttl,
                )
                await publisher.start()
                stack.push_async_callback(publisher.close)
            app.state.ctx = JetstreamContext(config, events, ingest, publisher)
            ingest.start()
            stack.push_async_callback(ingest.close)
            yield

    return Starlette(
        routes=[
            Route("/", status),
            WebSocketRoute("/subscribe", subscribe),
            WebSocketRoute(f"/xrpc/{NSID}", subscribe_events),
            Route("/xrpc/network.bsky.jetstream.getZstdDictionary", get_zstd_dictionary),
        ],
        lifespan=lifespan,
        exception_handlers={HTTPException: http_exception},
    )

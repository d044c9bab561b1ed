"""`create_app(config)`: the relay as a Starlette app (STYLE.md #9)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from atcore.identity.netguard import AddressGuard
from atcore.identity.pinned import guarded_client
from atcore.identity.resolver import IdentityResolver
from atcore.lexicon import Catalog
from atcore.xrpc.cors import cors_middleware
from atcore.xrpc.errors import XrpcError
from atcore.xrpc.failures import http_exception
from atcore.xrpc.router import XrpcRouter
from atcore.xrpc.server import mount
from relay.api import admin, status
from relay.api.sync_hosts import xrpc as host_methods
from relay.api.sync_repos import DELIVERED
from relay.api.sync_repos import xrpc as repo_methods
from relay.config import RelayConfig
from relay.context import RelayContext
from relay.crawler import Crawler
from relay.db import Database
from relay.hosts import HostAdmission
from relay.identity import BoundedResolver, PlcClient
from relay.ingest import Ingest
from relay.metrics import Metrics
from relay.resyncer import Resyncer
from relay.verifier import Verifier
from relay.writer import Writer

log = logging.getLogger(__name__)

# Lookups in flight to the PLC directory, each on its own connection (relay.identity): 48
# resolve up to ~900 new DIDs/s from a PLC 50 ms away; the rest wait their turn.
PLC_CONNECTIONS = 48
# indigo's relay marks itself so relays do not crawl each other by accident (HACKING.md).
SERVER_HEADER = (b"server", b"skyloft-relay (atproto-relay)")


class _ServerHeader:
    """Adds SERVER_HEADER to every HTTP response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), SERVER_HEADER]
            await send(message)

        await self.app(scope, receive, send_with_header)


def create_app(
    config: RelayConfig, *, validate_output: bool = False, backoff_base: float = 1.0
) -> Starlette:
    """The relay app; `validate_output` checks JSON responses against the lexicons (tests);
    `backoff_base` is the first reconnection delay in seconds (tests shorten it)."""
    catalog = Catalog.load_builtin()
    router = XrpcRouter(catalog, [repo_methods, host_methods], validate_output=validate_output)

    # httpx (the guarded client: did:web documents, hosts, resyncs) logs every request at
    # INFO: a line per lookup, thousands a second in a cold start of did:web accounts.
    logging.getLogger("httpx").setLevel(logging.WARNING)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            plc = PlcClient(PLC_CONNECTIONS)
            stack.push_async_callback(plc.aclose)
            db = Database(config.db_path)
            await db.open()
            stack.push_async_callback(db.close)
            metrics = Metrics()
            metrics.declare(DELIVERED, "Frames sent to firehose consumers")
            writer = Writer(db, config.replay_window, metrics)
            await writer.start()
            stack.push_async_callback(writer.close)
            # Hosts, their PDSes and did:web documents are named by users: guarded fetches only.
            guarded_http = guarded_client(AddressGuard(allow_private=config.dev_mode))
            stack.push_async_callback(guarded_http.aclose)
            resolver = BoundedResolver(
                IdentityResolver(
                    config.plc_url,
                    guarded_http=guarded_http,
                    allow_private=config.dev_mode,
                    plc_get=plc.get,
                ),
                PLC_CONNECTIONS,
            )
            resyncer = Resyncer(db, writer, resolver, guarded_http, metrics)
            resyncer.start()
            stack.push_async_callback(resyncer.close)
            verifier = Verifier(config.verify_workers)
            stack.push_async_callback(verifier.close)
            await verifier.start()
            ingest = Ingest(
                db,
                writer,
                resolver,
                metrics,
                lenient=config.lenient_sync,
                on_desync=resyncer.request,
                verifier=verifier,
            )
            stack.push_async_callback(ingest.close)
            crawler = Crawler(
                db,
                ingest,
                dev_mode=config.dev_mode,
                idle_timeout=config.idle_timeout,
                backoff_base=backoff_base,
                concurrency=config.host_concurrency,
            )
            admission = HostAdmission(config, db, crawler, guarded_http)
            app.state.ctx = RelayContext(
                config, db, writer, resolver, metrics, ingest, crawler, admission
            )
            await crawler.start()
            stack.push_async_callback(crawler.close)
            for hostname in config.hosts:
                try:
                    await admission.request_crawl(hostname, admin=True)
                except XrpcError as exc:  # the host may come up later and ask itself
                    log.warning("not crawling configured host %s: %s", hostname, exc.message)
            yield

    app = Starlette(
        routes=[*status.ROUTES, *admin.ROUTES, *mount(router)],
        middleware=[Middleware(_ServerHeader), cors_middleware()],
        lifespan=lifespan,
        exception_handlers={HTTPException: http_exception},
    )
    return app

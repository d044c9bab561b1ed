"""`create_app(config)`: the personal data server as a Starlette app (STYLE.md #9)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta
from urllib.parse import urlsplit

import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException

from atcore.identity.netguard import AddressGuard
from atcore.identity.pinned import guarded_client
from atcore.identity.plc_client import PlcClient
from atcore.identity.resolver import IdentityResolver
from atcore.jwt import Hs256Tokens
from atcore.lexicon import Catalog
from atcore.xrpc.cors import cors_middleware
from atcore.xrpc.failures import http_exception
from atcore.xrpc.router import XrpcRouter
from atcore.xrpc.server import mount
from pds import well_known
from pds.accounts.store import AccountStore
from pds.actor_store import ActorStores
from pds.api.app_bsky_actor import xrpc as actor_methods
from pds.api.com_atproto_admin import xrpc as admin_methods
from pds.api.com_atproto_identity import xrpc as identity_methods
from pds.api.com_atproto_repo import xrpc as repo_methods
from pds.api.com_atproto_server import xrpc as server_methods
from pds.api.com_atproto_server_email import xrpc as email_methods
from pds.api.com_atproto_server_invites import xrpc as invite_methods
from pds.api.com_atproto_sync import xrpc as sync_methods
from pds.blob_sweep import BlobSweeper
from pds.config import PdsConfig
from pds.context import AppContext
from pds.crawlers import Crawlers
from pds.did_docs import DidDocViews
from pds.mailer import mailer_for
from pds.proxy import forward
from pds.ratelimit import RateLimits, apply_rate_limits
from pds.sequencer import Sequencer

# Outbound calls (PLC, DID documents, crawlers) must never hang a request for long.
HTTP_TIMEOUT = 10.0


def create_app(config: PdsConfig, *, validate_output: bool = False) -> Starlette:
    """The PDS app; `validate_output` checks every JSON response against its lexicon (tests)."""
    catalog = Catalog.load_builtin()
    groups = [
        server_methods,
        invite_methods,
        email_methods,
        identity_methods,
        repo_methods,
        sync_methods,
        admin_methods,
        actor_methods,
    ]
    router = XrpcRouter(
        catalog,
        groups,
        fallback=forward,
        blob_limit=config.blob_upload_limit,
        validate_output=validate_output,
    )
    rate_limits = RateLimits.from_config(config)
    apply_rate_limits(router, rate_limits)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            http = httpx.AsyncClient(timeout=HTTP_TIMEOUT, follow_redirects=False)
            stack.push_async_callback(http.aclose)
            accounts = await AccountStore.open(config.account_db_path)
            stack.push_async_callback(accounts.close)
            actors = ActorStores(config.data_dir / "actors", config.blobstore_dir)
            stack.push_async_callback(actors.close)
            sweeper = BlobSweeper(
                actors, timedelta(seconds=config.blob_grace_seconds), config.blob_sweep_seconds
            )
            sequencer = Sequencer(config.data_dir, actors)
            await sequencer.start()
            stack.push_async_callback(sequencer.close)
            # The host relays should crawl: with the port in dev mode (http://localhost:N).
            crawl_host = urlsplit(config.public_url).netloc
            crawlers = Crawlers(config.crawlers, crawl_host, http, sequencer)
            await crawlers.start()
            stack.push_async_callback(crawlers.close)
            guarded_http = guarded_client(AddressGuard(allow_private=config.dev_mode))
            stack.push_async_callback(guarded_http.aclose)
            resolver = IdentityResolver(
                config.plc_url, http, guarded_http=guarded_http, allow_private=config.dev_mode
            )
            plc = PlcClient(config.plc_url, http)
            app.state.ctx = AppContext(
                config=config,
                accounts=accounts,
                actors=actors,
                sequencer=sequencer,
                resolver=resolver,
                plc=plc,
                did_docs=DidDocViews(resolver, plc),
                http=http,
                guarded_http=guarded_http,
                catalog=catalog,
                plc_rotation_key=config.rotation_key(),
                service_did=config.service_did,
                mailer=mailer_for(config),
                rate_limits=rate_limits,
                blob_sweeper=sweeper,
                session_tokens=Hs256Tokens(config.jwt_secret),
            )
            sweeper.start()
            stack.push_async_callback(sweeper.close)
            yield

    return Starlette(
        routes=[*well_known.ROUTES, *mount(router)],
        middleware=[cors_middleware()],
        lifespan=lifespan,
        exception_handlers={HTTPException: http_exception},
    )

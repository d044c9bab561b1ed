"""What the PDS's handlers share: built by the app's lifespan, never a module global."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx
from starlette.requests import HTTPConnection

from atcore.identity.plc_client import PlcClient
from atcore.identity.resolver import IdentityResolver
from atcore.jwt import Hs256Tokens
from atcore.keys import PrivateKey
from atcore.lexicon import Catalog
from atcore.xrpc.router import SubscriptionRequest, XrpcRequest, app_state
from pds.accounts.store import AccountStore
from pds.config import PdsConfig
from pds.did_docs import DidDocViews
from pds.mailer import Mailer
from pds.ratelimit import RateLimits

if TYPE_CHECKING:
    from pds.actor_store import ActorStores
    from pds.blob_sweep import BlobSweeper
    from pds.sequencer import Sequencer


@dataclass(frozen=True)
class AppContext:
    config: PdsConfig
    accounts: AccountStore
    actors: ActorStores
    sequencer: Sequencer
    resolver: IdentityResolver
    plc: PlcClient
    did_docs: DidDocViews  # what clients are shown, cached beside `resolver`'s copy
    http: httpx.AsyncClient  # operator-configured services: PLC, appview, relays
    guarded_http: httpx.AsyncClient  # URLs a user can aim (atcore.identity.pinned)
    catalog: Catalog
    plc_rotation_key: PrivateKey
    service_did: str
    mailer: Mailer
    rate_limits: RateLimits
    blob_sweeper: BlobSweeper
    session_tokens: Hs256Tokens  # under config.jwt_secret


def ctx_of(req: XrpcRequest | SubscriptionRequest | HTTPConnection) -> AppContext:
    """The context of the app serving `req` (an XRPC request, a subscription or a connection)."""
    ctx: AppContext = app_state(req).ctx
    return ctx

"""What the appview's handlers share: built by the app's lifespan, never a module global."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from starlette.requests import HTTPConnection

from appview.config import AppviewConfig
from appview.db import Database
from appview.ingest import Ingest
from atcore.identity.resolver import IdentityResolver
from atcore.keys import PrivateKey
from atcore.lexicon import Catalog
from atcore.service_auth import ServiceTokens
from atcore.xrpc.router import XrpcRequest, app_state


@dataclass(frozen=True)
class AppviewContext:
    config: AppviewConfig
    db: Database
    resolver: IdentityResolver
    http: httpx.AsyncClient
    signing_key: PrivateKey
    ingest: Ingest | None
    catalog: Catalog
    guarded_http: httpx.AsyncClient  # URLs a user can aim: feed generators (atcore.identity.pinned)
    tokens: ServiceTokens  # service-auth tokens verified against `resolver`


def ctx_of(req: XrpcRequest | HTTPConnection) -> AppviewContext:
    ctx: AppviewContext = app_state(req).ctx
    return ctx

"""What the relay's handlers share: built by the app's lifespan, never a module global."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from starlette.requests import HTTPConnection

from atcore.xrpc.router import SubscriptionRequest, XrpcRequest, app_state
from relay.config import RelayConfig
from relay.crawler import Crawler
from relay.db import Database
from relay.hosts import HostAdmission
from relay.identity import BoundedResolver
from relay.ingest import Ingest
from relay.metrics import Metrics
from relay.writer import Writer


@dataclass(frozen=True)
class RelayContext:
    config: RelayConfig
    db: Database
    writer: Writer
    resolver: BoundedResolver
    metrics: Metrics
    ingest: Ingest
    crawler: Crawler
    admission: HostAdmission
    started: float = field(default_factory=time.time)


def ctx_of(req: XrpcRequest | SubscriptionRequest | HTTPConnection) -> RelayContext:
    """The context of the app serving `req` (an XRPC request, a subscription or a connection)."""
    ctx: RelayContext = app_state(req).ctx
    return ctx

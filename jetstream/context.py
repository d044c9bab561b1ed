"""What Jetstream's handlers share: built by the app's lifespan, never a module global."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from jetstream.config import JetstreamConfig
from jetstream.fanout import SharedPages
from jetstream.ingest import Ingest
from jetstream.log import EventLog

if TYPE_CHECKING:  # nats-py is imported only when publishing
    from jetstream.nats_publish import NatsPublisher


@dataclass(frozen=True)
class JetstreamContext:
    config: JetstreamConfig
    events: EventLog
    ingest: Ingest
    nats: NatsPublisher | None = None
    pages: SharedPages = field(default_factory=SharedPages)

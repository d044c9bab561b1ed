"""What Jetstream's handlers share: built by the app's lifespan, never a module global."""

from __future__ import annotations

from dataclasses import dataclass

from jetstream.config import JetstreamConfig
from jetstream.ingest import Ingest
from jetstream.log import EventLog


@dataclass(frozen=True)
class JetstreamContext:
    config: JetstreamConfig
    events: EventLog
    ingest: Ingest

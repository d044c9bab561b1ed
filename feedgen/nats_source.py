"""Reading the stream's events from NATS JetStream (FEEDGEN_NATS_URL): what `skyloft jetstream
serve --nats URL` publishes (jetstream.nats_publish), for feed generators on other processes or
machines than the stream.

The stream (FEEDGEN_NATS_STREAM) holds each event's v1 JSON under `<subject>.commit.<collection>`,
`<subject>.account`, ... (FEEDGEN_NATS_SUBJECT). An ordered consumer reads `<subject>.>` (the
NATS server here predates several filter subjects per consumer) and the feed's collections and
account events are kept by subject, before any JSON is parsed. The position is the message's
stream sequence: a restart asks NATS for the sequence after the last one stored, so nothing is
lost or applied twice.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Final

import nats
from nats.errors import Error as NatsError
from nats.js.api import ConsumerConfig, DeliverPolicy

from feedgen.changes import Event
from feedgen.jetstream_source import parse_event

# How long the ordered consumer may go without a heartbeat before the client re-creates it.
HEARTBEAT_SECONDS: Final = 5.0


class NatsSource:
    """The NATS server at `url`: `stream` over the subjects `<subject>.>`."""

    name = "nats"

    def __init__(self, url: str, stream: str, subject: str, collections: frozenset[str]) -> None:
        self.url = url
        self.stream = stream
        self.subject = subject
        self.wanted = frozenset(f"{subject}.commit.{c}" for c in collections) | {
            f"{subject}.account"
        }

    async def events(self, position: int | None) -> AsyncIterator[Event]:
        if position is None:
            config = ConsumerConfig(deliver_policy=DeliverPolicy.NEW)
        else:
            config = ConsumerConfig(
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=position + 1
            )
        try:
            nc = await nats.connect(self.url, allow_reconnect=False, connect_timeout=10)
        except (NatsError, OSError) as exc:
            raise ConnectionError(f"{self.url}: {exc}") from exc
        try:
            sub = await nc.jetstream().subscribe(
                f"{self.subject}.>",
                stream=self.stream,
                config=config,
                ordered_consumer=True,
                idle_heartbeat=HEARTBEAT_SECONDS,
            )
            async for message in sub.messages:
                seq = message.metadata.sequence.stream
                if message.subject not in self.wanted:
                    yield Event(seq, [])
                    continue
                try:
                    body = json.loads(message.data)
                except ValueError:  # asking again would bring the same bytes back: skip
                    continue
                event = parse_event(body)
                yield Event(seq, [] if event is None else event.changes)
        except NatsError as exc:
            raise ConnectionError(f"{self.url}: {exc}") from exc
        finally:
            await nc.close()

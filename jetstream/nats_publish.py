"""Publishing the event log to NATS JetStream, for consumers on other processes and machines
(`--nats URL`; docs.nats.io, "JetStream").

One stream (JETSTREAM_NATS_STREAM) over the subjects `<subject>.>`, kept for the log's TTL:
a commit goes to `<subject>.commit.<collection>` (so `atproto.commit.app.bsky.graph.>` is the
`app.bsky.graph.*` filter), the others to `<subject>.identity`, `.account` and `.sync`. Each
message is the v1 JSON, with the event's `time_us` as its `Nats-Msg-Id`, so JetStream drops a
re-publication inside its duplicate window. The publisher is one more reader of the log, at a
position it persists once NATS has acknowledged a page: after a restart it resumes there,
and nothing is lost (at worst a page is sent twice, and deduplicated).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final

import nats
from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.js.api import StorageType, StreamConfig
from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError

from jetstream.events import Entry
from jetstream.log import EventLog, FellBehind

log = logging.getLogger(__name__)

__all__ = ["NatsPublisher"]

PAGE: Final = 512
MARK: Final = "nats"
RETRY_SECONDS: Final = 1.0
DUPLICATE_WINDOW: Final = 120.0
ACK_SECONDS: Final = 30.0


class NatsPublisher:
    def __init__(self, url: str, events: EventLog, *, stream: str, subject: str, ttl: float):
        self.url = url
        self.events = events
        self.stream = stream
        self.subject = subject
        self.ttl = ttl
        self.published = 0
        self._task: asyncio.Task[None] | None = None
        self._nc: Client | None = None

    def subject_of(self, entry: Entry) -> str:
        if entry.kind == "commit":
            return f"{self.subject}.commit.{entry.collection}"
        return f"{self.subject}.{entry.kind}"

    async def start(self) -> None:
        self._nc = await nats.connect(self.url, name="skyloft-jetstream", max_reconnect_attempts=-1)
        js = self._nc.jetstream()
        await self._ensure_stream(js)
        self._task = asyncio.create_task(self._run(js), name="jetstream-nats")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._nc is not None:
            await self._nc.close()

    async def _ensure_stream(self, js: JetStreamContext) -> None:
        config = StreamConfig(
            name=self.stream,
            subjects=[f"{self.subject}.>"],
            max_age=self.ttl,
            storage=StorageType.FILE,
            duplicate_window=DUPLICATE_WINDOW,
        )
        try:
            await js.stream_info(self.stream)
        except NotFoundError:
            await js.add_stream(config)
        else:
            await js.update_stream(config)

    async def _run(self, js: JetStreamContext) -> None:
        events = self.events
        # Without a mark, everything the log still holds.
        after = events.marks.get(MARK, events.trimmed)
        while True:
            try:
                page = await events.read(after, PAGE)
            except FellBehind:
                log.error("NATS publishing fell behind the log; skipping to what it retains")
                after = events.trimmed
                continue
            if not page:
                await events.wait(after)
                continue
            try:
                await self._publish(js, page)
            except (NatsError, TimeoutError) as exc:
                log.warning("publishing to NATS failed (%s); retrying", exc)
                await asyncio.sleep(RETRY_SECONDS)
                continue
            after = page[-1].key
            self.published += len(page)
            await events.set_mark(MARK, after)

    async def _publish(self, js: JetStreamContext, page: list[Entry]) -> None:
        acks = [
            await js.publish_async(
                self.subject_of(entry), entry.body, headers={"Nats-Msg-Id": str(entry.key)}
            )
            for entry in page
        ]
        async with asyncio.timeout(ACK_SECONDS):
            await asyncio.gather(*acks)

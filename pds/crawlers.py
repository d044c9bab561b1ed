"""Asking relays to crawl this PDS (com.atproto.sync.requestCrawl; spec-sync.md).

Each relay in PDS_CRAWLERS hears from us at start-up, again on the first event after start-up
(so a fresh PDS is crawled once it has something to say), and after that on any event at most
once per `interval`, like the reference PDS. Failures are logged, never fatal: relays also
find us through other PDSes' and users' requests.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Final

import httpx

from atcore.tasks import cancel_and_wait
from atcore.xrpc.client import XrpcClient, XrpcClientError
from atcore.xrpc.errors import XrpcError
from pds.sequencer import Sequencer

log = logging.getLogger(__name__)

NOTIFY_INTERVAL: Final = 20 * 60.0
REQUEST_CRAWL: Final = "com.atproto.sync.requestCrawl"
TIMEOUT: Final = 10.0
# The answer is an empty object; a relay has no reason to say more.
MAX_ANSWER: Final = 64 * 1024


class Crawlers:
    def __init__(
        self,
        urls: Sequence[str],
        hostname: str,
        http: httpx.AsyncClient,
        sequencer: Sequencer,
        *,
        interval: float = NOTIFY_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.urls = tuple(urls)
        self.hostname = hostname
        self._http = http
        self._sequencer = sequencer
        self._interval = interval
        self._clock = clock
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self.urls:
            self._task = asyncio.create_task(self._run(), name="crawler-notify")

    async def close(self) -> None:
        await cancel_and_wait([self._task])

    async def notify_all(self) -> None:
        await asyncio.gather(*(self._notify(url) for url in self.urls))

    async def _notify(self, url: str) -> None:
        relay = XrpcClient(url, self._http, max_response=MAX_ANSWER, timeout=TIMEOUT)
        try:
            await relay.procedure(REQUEST_CRAWL, {"hostname": self.hostname})
        except XrpcClientError as exc:
            log.warning("requestCrawl to %s failed: %s", url, exc)

    async def _run(self) -> None:
        await self.notify_all()
        last: float | None = None  # None: nothing sent since start-up yet
        while True:
            try:
                async for _ in self._sequencer.subscribe(None):
                    now = self._clock()
                    if last is None or now - last >= self._interval:
                        last = now
                        await self.notify_all()
                return  # the stream ended: the sequencer is closing
            except XrpcError as exc:  # ConsumerTooSlow while we were notifying: rejoin
                log.info("crawler notifier rejoins the event stream: %s", exc.message)

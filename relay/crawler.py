"""One websocket consumer per upstream host (spec-sync.md, "Firehose"; indigo-relay-HACKING.md;
where each event goes next: relay/HACKING.md).

A consumer resumes from the host's persisted cursor (a new host starts at the live head, as
indigo's relay does; in dev mode at the oldest event, so a local network loses nothing),
reconnects with exponential backoff and jitter, and gives up as `offline` after too many
failed attempts in a row. A host that sends nothing for the idle timeout is disconnected as
`idle` until its next requestCrawl. Each event first waits for the host's rate limits (the host
shows `throttled` meanwhile), then goes to relay.ingest: `prepare` (verification starts on the
workers) as it arrives, `apply` (identity and state checks, queued for the log) in its DID's
lane (relay.lanes): in order per DID, up to `concurrency` DIDs of the host at once, so one
account's slow identity lookup does not hold up the others. Up to WINDOW events of a host are
in flight. The host's position (relay.hostcursor) is persisted with the events; one that moved
only by events needing no write is flushed every few seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator
from functools import partial
from typing import Final

from websockets.exceptions import WebSocketException

from atcore.errors import DecodeError, IdentityError
from atcore.frames import AccountEvent, CommitEvent, IdentityEvent, SyncEvent
from atcore.identity.netguard import AddressGuard
from atcore.tasks import cancel_and_wait
from atcore.xrpc.stream import StreamError, subscribe
from relay.config import DEFAULT_HOST_CONCURRENCY
from relay.db import Database, hosts
from relay.db.hosts import HostRow
from relay.hostcursor import HostCursor
from relay.ingest import Ingest, Prepared
from relay.lanes import Lanes
from relay.limits import HostLimiter, host_rates
from relay.writer import Emitted, event_did

log = logging.getLogger(__name__)

SUBSCRIBE: Final = "/xrpc/com.atproto.sync.subscribeRepos"
ACTIVE, IDLE, OFFLINE, THROTTLED, BANNED = "active", "idle", "offline", "throttled", "banned"
BAD_FRAME: Final = "bad_frame"
SEQ_NOT_INCREASING: Final = "seq_not_increasing"
CONNECTIONS: Final = "relay_upstream_connections_total"
_EVENTS = (CommitEvent, SyncEvent, IdentityEvent, AccountEvent)
# Events of one host read and not all finished before them (bounds the memory they hold, and
# how far one slow event lets the others run ahead).
WINDOW = 4096


class _Idle(Exception):
    pass


def host_url(hostname: str) -> str:
    """http for localhost and loopback names (dev mode only admits those), https otherwise."""
    name = hostname.rsplit(":", 1)[0] if not hostname.endswith("]") else hostname
    local = name in ("localhost", "127.0.0.1", "[::1]") or name.endswith(".localhost")
    return ("http://" if local else "https://") + hostname


class HostConsumer:
    def __init__(self, crawler: Crawler, host: HostRow) -> None:
        self.crawler = crawler
        self.host = host
        # Read from the database when the consumer starts (after every queued write).
        self.position = HostCursor(host.id, host.cursor, (), WINDOW)
        self.status = ACTIVE
        self._waiting_since: float | None = None  # when the reader began waiting for a frame
        self._idle = False  # the watchdog cancelled the reader
        self._writes: set[asyncio.Future[int | None]] = set()  # changes queued, not durable
        self._failed: BaseException | None = None  # a write failed: the connection ends
        self._lanes: Lanes[Prepared] = Lanes(self._apply, 1)  # the connection's, once it runs
        self.limiter = HostLimiter(
            host_rates(
                host.account_limit, host.trusted, host.per_second, host.per_hour, host.per_day
            )
        )
        self.task = asyncio.create_task(self._run(), name=f"crawl {host.hostname}")

    @property
    def cursor(self) -> int:
        return self.position.cursor

    async def _run(self) -> None:
        crawler = self.crawler
        read = partial(hosts.position, host_id=self.host.id)
        cursor, done = await crawler.writer.run(read)
        self.position = HostCursor(self.host.id, cursor, done, WINDOW)
        failures = 0
        while True:
            before = self.cursor
            try:
                await self._consume()
                reason = "stream ended"
            except _Idle:
                log.info(
                    "%s sent nothing for %.0f s: idle", self.host.hostname, crawler.idle_timeout
                )
                await crawler.finish(self, IDLE)
                return
            except StreamError as exc:
                if exc.error == "FutureCursor":
                    log.warning(
                        "%s says cursor %d is in its future", self.host.hostname, self.cursor
                    )
                    self.position = HostCursor(self.host.id, 0, (), WINDOW)
                    reset = partial(hosts.reset_cursor, host_id=self.host.id)
                    await crawler.writer.run(reset)
                    await crawler.finish(self, IDLE)
                    return
                reason = str(exc)
            except DecodeError as exc:
                crawler.ingest.reject(self.host, BAD_FRAME, detail=str(exc))
                reason = f"bad frame: {exc}"
            except (OSError, TimeoutError, WebSocketException, IdentityError) as exc:
                reason = repr(exc)
            await crawler.flush(self)
            failures = 0 if self.cursor > before else failures + 1
            if failures > crawler.max_failures:
                log.warning(
                    "%s unreachable after %d attempts: offline", self.host.hostname, failures
                )
                await crawler.finish(self, OFFLINE)
                return
            delay = crawler.backoff(failures)
            log.info("%s disconnected (%s); retrying in %.1f s", self.host.hostname, reason, delay)
            await asyncio.sleep(delay)

    async def _consume(self) -> None:
        crawler = self.crawler
        resume = self.position.resume()
        cursor = resume if resume > 0 else (0 if crawler.dev_mode else None)
        url = host_url(self.host.hostname) + SUBSCRIBE
        stream = subscribe(url, {"cursor": cursor}, guard=crawler.guard)
        crawler.metrics.inc(CONNECTIONS)
        last = -1
        lanes: Lanes[Prepared] = Lanes(self._apply, crawler.concurrency)
        self._lanes = lanes
        self._failed = None
        reader = asyncio.current_task()
        assert reader is not None
        self._idle = False
        watchdog = asyncio.create_task(self._watch(reader), name=f"idle {self.host.hostname}")
        try:
            while True:
                try:
                    event = await self._next(stream, lanes)
                except Exception:
                    await self._drain(lanes)  # what was read before still counts
                    raise
                if event is None:
                    break
                if not isinstance(event, _EVENTS):
                    continue  # #info and unknown kinds are not relayed
                if event.seq <= last:
                    crawler.ingest.reject(self.host, SEQ_NOT_INCREASING, detail=str(event.seq))
                    continue
                last = event.seq
                await self._throttle()
                await self._room(lanes)
                if self.position.begin(event.seq):
                    self._add(lanes, crawler.ingest.prepare(event, self.host))
            await self._drain(lanes)
        finally:
            await cancel_and_wait([watchdog])
            await lanes.close()
            await stream.aclose()  # type: ignore[attr-defined]

    def _add(self, lanes: Lanes[Prepared], prepared: Prepared) -> None:
        did = event_did(prepared.event)
        lanes.add(did, prepared)
        if prepared.identity is not None:
            # A new account's commits read before its key start their checks once it is
            # known, whether or not its lane has reached them.
            start = partial(self._key_known, lanes, prepared.event)
            prepared.identity.add_done_callback(start)

    def _key_known(self, lanes: Lanes[Prepared], event: Emitted, _: object) -> None:
        self.crawler.ingest.start_checks(event, lanes.waiting(event_did(event)))

    async def _apply(self, prepared: Prepared) -> None:
        """Run in the event's DID lane: check it and queue its change."""
        ingest = self.crawler.ingest
        done = await ingest.apply(self.host, prepared, self.position)
        # A new account's commits read while its #identity was looked up.
        ingest.start_checks(prepared.event, self._lanes.waiting(event_did(prepared.event)))
        if done is not None:
            self._writes.add(done)
            done.add_done_callback(self._written)

    def _written(self, done: asyncio.Future[int | None]) -> None:
        self._writes.discard(done)
        if not done.cancelled() and (error := done.exception()) is not None:
            self._failed = self._failed or error  # its event stays unfinished
            self.position.progress.set()

    def _check(self, lanes: Lanes[Prepared]) -> None:
        """Raise what failed in a lane or a write: the connection ends (and resumes from the
        cursor, before every event that did not finish)."""
        error = lanes.error or self._failed
        if error is not None:
            raise error

    async def _room(self, lanes: Lanes[Prepared]) -> None:
        """Wait until the window has room for one more event."""
        position = self.position
        while position.full():
            self._check(lanes)
            position.progress.clear()
            await position.progress.wait()
        self._check(lanes)

    async def _drain(self, lanes: Lanes[Prepared]) -> None:
        """Wait for every event read to run and its change to be durable."""
        await lanes.drain()
        if self._writes:
            await asyncio.wait(list(self._writes))
        self._check(lanes)

    async def _next(self, stream: AsyncIterator[object], lanes: Lanes[Prepared]) -> object:
        """The next upstream event (None at the end of the stream); what failed in a lane or
        a write meanwhile; _Idle when the watchdog found the wait too long."""
        self._check(lanes)
        self._waiting_since = time.monotonic()
        try:
            return await anext(stream)
        except StopAsyncIteration:
            return None
        except asyncio.CancelledError:
            reader = asyncio.current_task()
            if self._idle and reader is not None and reader.uncancel() == 0:
                raise _Idle() from None
            raise
        finally:
            self._waiting_since = None

    async def _watch(self, reader: asyncio.Task[None]) -> None:
        """Cancel `reader` once it has waited the idle timeout for one frame. One task per
        connection: the reader only notes when it starts waiting, no timer per frame."""
        timeout = self.crawler.idle_timeout
        while True:
            since = self._waiting_since
            waited = 0.0 if since is None else time.monotonic() - since
            if waited >= timeout:
                self._idle = True
                reader.cancel()
                return
            await asyncio.sleep(timeout - waited)

    async def _throttle(self) -> None:
        while (wait := self.limiter.wait_time()) > 0:
            self.status = THROTTLED
            await asyncio.sleep(min(wait, 1.0))
        self.status = ACTIVE
        self.limiter.take()


class Crawler:
    """Every running consumer, by hostname."""

    def __init__(
        self,
        db: Database,
        ingest: Ingest,
        *,
        dev_mode: bool = False,
        idle_timeout: float = 3600.0,
        backoff_base: float = 1.0,
        backoff_max: float = 60.0,
        max_failures: int = 15,
        flush_interval: float = 5.0,
        concurrency: int = DEFAULT_HOST_CONCURRENCY,
    ) -> None:
        self.db = db
        self.ingest = ingest
        self.writer = ingest.writer  # every database write goes through it
        self.metrics = ingest.metrics
        self.dev_mode = dev_mode
        # Every (re)connection resolves the host afresh and connects to what was checked:
        # a host admitted as public may not turn private later.
        self.guard = AddressGuard(allow_private=dev_mode)
        self.idle_timeout = idle_timeout
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.max_failures = max_failures
        self.flush_interval = flush_interval
        self.concurrency = concurrency
        self.consumers: dict[str, HostConsumer] = {}
        self._flusher: asyncio.Task[None] | None = None
        self.metrics.declare(CONNECTIONS, "Websocket connections opened to upstream hosts")

    async def start(self) -> None:
        for host in await self.db.read(hosts.with_status, (ACTIVE, THROTTLED)):
            self.ensure(host)
        self._flusher = asyncio.create_task(self._flush_loop(), name="crawl-cursor-flush")

    def ensure(self, host: HostRow) -> None:
        """Consume `host` unless a consumer is already running for it."""
        running = self.consumers.get(host.hostname)
        if running is None or running.task.done():
            self.consumers[host.hostname] = HostConsumer(self, host)

    def live_status(self, hostname: str) -> str | None:
        consumer = self.consumers.get(hostname)
        return None if consumer is None or consumer.task.done() else consumer.status

    def backoff(self, failures: int) -> float:
        """Exponential in the number of failures in a row, capped, with ±50% jitter."""
        delay = min(self.backoff_base * 2.0 ** max(failures - 1, 0), self.backoff_max)
        return delay * random.uniform(0.5, 1.5)

    async def stop(self, hostname: str) -> None:
        consumer = self.consumers.pop(hostname, None)
        if consumer is not None:
            await cancel_and_wait([consumer.task])
            await self.flush(consumer)

    async def finish(self, consumer: HostConsumer, status: str) -> None:
        """A consumer ends itself with the host's new status."""
        await self.flush(consumer)
        await self.writer.run(hosts.set_status, consumer.host.id, status)
        if self.consumers.get(consumer.host.hostname) is consumer:
            del self.consumers[consumer.host.hostname]

    async def flush(self, consumer: HostConsumer) -> None:
        position = consumer.position
        if position.cursor != position.persisted:
            await self.writer.persist(position)

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval)
            for consumer in list(self.consumers.values()):
                try:
                    await self.flush(consumer)
                except Exception:  # retried next round
                    log.exception("flushing the cursor of %s failed", consumer.host.hostname)

    async def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        for hostname in list(self.consumers):
            await self.stop(hostname)

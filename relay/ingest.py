"""Handling one upstream event: check, verify, persist, emit (spec-sync.md, "Relay" duties).

Events of one host arrive here in order (relay.crawler) and go through two steps: `prepare`
starts the costly, state-independent checks of a #commit on relay.verifier's workers as the
event is read (with the signing key when the DID document is at hand; without a lookup, so
reading never waits for one), so many events of a host are checked at once; `apply`, in each
DID's order (relay.lanes), checks the event against its account's latest state
(relay.accountcache: it includes queued changes), then queues the new state and the event,
tagged with the host position it finishes (relay.hostcursor), for one transaction in
relay.writer, which fans the event out once durable. A rejected event is counted by reason
and never forwarded (one that repeats the state held, such as a #sync of the current commit,
is counted as ignored); a chain break marks the repo desynchronized (also persisted) and asks
for a resync. Taken-down and over-the-limit accounts are dropped first.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any, Final, TypeVar

from atcore.frames import AccountEvent, CommitEvent, IdentityEvent, SyncEvent
from atcore.identity.diddoc import DidDocument
from atcore.tasks import cancel_and_wait
from relay import validate
from relay.db import Database, accounts
from relay.db.accounts import AccountRow
from relay.db.hosts import HostRow
from relay.hostcursor import HostCursor
from relay.metrics import Metrics
from relay.repostate import RepoState, Verdict
from relay.verifier import Verifier
from relay.writer import Change, Emitted, Writer, event_did, kind_of
from runtime.workers import WorkerFailed

log = logging.getLogger(__name__)

RECEIVED: Final = "relay_events_received_total"
REJECTED: Final = "relay_events_rejected_total"
IGNORED: Final = "relay_events_ignored_total"
LENIENT: Final = "relay_lenient_accepts_total"

# Our own reasons, next to relay.repostate.Reason's.
TAKENDOWN: Final = "takendown"
HOST_THROTTLED: Final = "host_throttled"

DesyncHandler = Callable[[str, HostRow], None]
T = TypeVar("T")


@dataclass(slots=True)
class Prepared:
    """An event whose costly checks may be running elsewhere (`check`, set when they start);
    `identity`: its DID's document, looked up from the moment the event was read, when the
    DID's document was not at hand then (a new account's: ahead of its lane)."""

    event: Emitted
    check: asyncio.Future[validate.CommitCheck] | None = None
    identity: asyncio.Future[DidDocument] | None = None


def collections_of(event: CommitEvent) -> tuple[str, ...]:
    """Collections the commit writes records into (creates and updates)."""
    found = {op.path.split("/", 1)[0] for op in event.ops if op.action != "delete"}
    return tuple(sorted(found))


class Ingest:
    def __init__(
        self,
        db: Database,
        writer: Writer,
        resolver: validate.Resolver,
        metrics: Metrics,
        *,
        lenient: bool = False,
        on_desync: DesyncHandler | None = None,
        verifier: Verifier | None = None,
    ) -> None:
        self.db = db
        self.verifier = verifier
        self.writer = writer
        self.resolver = resolver
        self.metrics = metrics
        self.lenient = lenient
        self.on_desync = on_desync
        self._tasks: set[asyncio.Task[Any]] = set()  # work started ahead of the lanes
        self._looking: dict[str, asyncio.Future[DidDocument]] = {}  # lookups ahead, by DID
        metrics.declare(RECEIVED, "Upstream events received, by kind")
        metrics.declare(REJECTED, "Upstream events not forwarded, by reason")
        metrics.declare(IGNORED, "Upstream events that repeat the state held, by kind")
        metrics.declare(LENIENT, "Commits accepted only because lenient sync validation is on")

    def reject(self, host: HostRow, reason: str, did: str = "", detail: str = "") -> None:
        self.metrics.inc(REJECTED, reason=reason)
        log.info("dropped event from %s for %s: %s %s", host.hostname, did, reason, detail)

    def prepare(self, event: Emitted, host: HostRow) -> Prepared:
        """Start the state-independent checks of `event` (relay.verifier); call `apply` with
        the result in the DID's order. Events may be prepared well ahead. Without the DID's
        document at hand, a known account's check starts without the key (`apply` looks it
        up and verifies the signature); a new account's waits for `start_checks`, since its
        #identity, just ahead in its lane, is about to bring the key, as does a lookup
        started ahead.

        What a new account's first event would wait for in its lane starts here, at once: its
        row (loaded, or created, in the writer's next batch) and its DID document (`identity`;
        for an #identity, a lookup that starts after the event was read serves as the fresh
        one it asks for)."""
        did = event_did(event)
        accounts = self.writer.accounts
        if did not in accounts and not accounts.loading(did):
            self._ahead(accounts.get(did, partial(self._load, did, host)))
        prepared = Prepared(event, identity=self._look_up(did, event))
        if not isinstance(event, CommitEvent) or self.verifier is None:
            return prepared
        doc = self.resolver.cached(did)
        if doc is None and (did not in accounts or did in self._looking):
            return prepared
        key = None if doc is None else doc.signing_key
        prepared.check = self.verifier.check(event, key)
        return prepared

    def _look_up(self, did: str, event: Emitted) -> asyncio.Future[DidDocument] | None:
        """A lookup of `did`'s document started now, unless it is cached (or, but for an
        #identity, which needs a fresh one, being looked up ahead already)."""
        if self.resolver.cached(did) is not None:
            return None
        fresh = isinstance(event, IdentityEvent)
        if not fresh and did in self._looking:
            return None
        lookup = self._ahead(
            self.resolver.refresh(did) if fresh else self.resolver.resolve_did(did)
        )
        self._looking[did] = lookup
        lookup.add_done_callback(partial(self._looked_up, did))
        return lookup

    def _looked_up(self, did: str, lookup: asyncio.Future[DidDocument]) -> None:
        if self._looking.get(did) is lookup:
            del self._looking[did]

    def _ahead(self, work: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Run `work` ahead of the lanes; a failure is left to the lane (which tries again)."""
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._settled)
        return task

    def _settled(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: the lane sees it again when it asks

    async def close(self) -> None:
        """Cancel the work started ahead of the lanes (after the crawler stopped)."""
        await cancel_and_wait(list(self._tasks))

    async def apply(
        self, host: HostRow, prepared: Prepared, position: HostCursor
    ) -> asyncio.Future[int | None] | None:
        """Check a prepared event against its account's latest state and queue what it changes;
        returns the future of its relay seq (None inside once durable when not emitted), or
        None when nothing was queued (the event is finished in `position` then). Call in the
        DID's order: each event sees the outcome of the one before it, durable or not."""
        self.start_checks(prepared.event, (prepared,), keyless=True)
        done = await self._apply(host, prepared, position)
        if done is None:
            position.finish(prepared.event.seq)
        return done

    def start_checks(
        self, event: Emitted, prepared: Iterable[Prepared], *, keyless: bool = False
    ) -> None:
        """Start the checks of the commits among `prepared` (of `event`'s DID) that have none,
        with the DID's key once it is at hand: a new account's commits, read while its
        #identity was looked up, go to the workers all at once, instead of having their
        signatures verified here one by one. `keyless` starts them even without the key."""
        if self.verifier is None:
            return
        doc = self.resolver.cached(event_did(event))
        key = None if doc is None else doc.signing_key
        if key is None and not keyless:
            return
        for each in prepared:
            if each.check is None and isinstance(each.event, CommitEvent):
                each.check = self.verifier.check(each.event, key)

    async def _apply(
        self, host: HostRow, prepared: Prepared, position: HostCursor
    ) -> asyncio.Future[int | None] | None:
        event = prepared.event
        kind, did = kind_of(event), event_did(event)
        self.metrics.inc(RECEIVED, kind=kind)
        account = await self.writer.accounts.get(did, partial(self._load, did, host))
        if account.takedown:
            self.reject(host, TAKENDOWN, did)
            return None
        if account.throttled:
            self.reject(host, HOST_THROTTLED, did)
            return None
        check = None
        if prepared.check is not None:
            try:
                check = await prepared.check
            except WorkerFailed:
                pass  # its worker died (relay.verifier logged it): validate checks inline
        verdict = await self._verify(host.hostname, prepared, account.state, check)
        if verdict.ignored:
            self.metrics.inc(IGNORED, kind=kind)
            return None
        if not verdict.accepted:
            self.reject(host, str(verdict.reason), did, verdict.detail)
            done = None
            if verdict.state != account.state:
                change = Change(
                    host.id, state=verdict.state, position=position, upstream_seq=event.seq
                )
                done = self.writer.submit(change)
            if verdict.desynchronized and self.on_desync is not None:
                self.on_desync(did, host)
            return done
        if verdict.lenient:
            self.metrics.inc(LENIENT)
        collections = collections_of(event) if isinstance(event, CommitEvent) else ()
        change = Change(
            host.id,
            state=verdict.state,
            event=event,
            collections=collections,
            position=position,
            upstream_seq=event.seq,
            decoded=True,
        )
        return self.writer.submit(change)

    async def _load(self, did: str, host: HostRow) -> AccountRow:
        limit = host.account_limit
        row: AccountRow = await self.writer.run(
            partial(accounts.create_for_host, did=did, host_id=host.id, limit=limit)
        )
        return row

    async def _verify(
        self,
        hostname: str,
        prepared: Prepared,
        state: RepoState,
        check: validate.CommitCheck | None,
    ) -> Verdict:
        event = prepared.event
        if isinstance(event, CommitEvent):
            return await validate.verify_commit(
                event, state, hostname, self.resolver, lenient=self.lenient, check=check
            )
        if isinstance(event, SyncEvent):
            return await validate.verify_sync(event, state, hostname, self.resolver)
        if isinstance(event, IdentityEvent):
            return await validate.verify_identity(
                event, state, hostname, self.resolver, fresh=prepared.identity
            )
        assert isinstance(event, AccountEvent)
        return await validate.verify_account(event, state, hostname, self.resolver)

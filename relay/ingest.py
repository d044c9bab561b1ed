"""Handling one upstream event: check, verify, persist, emit (spec-sync.md, "Relay" duties).

Events of one host arrive here in order (relay.crawler). The account's last state is read,
the event verified by relay.validate, and an accepted event is persisted with its new state and
the host's cursor in one transaction by relay.events, which then fans it out. A rejected event
is counted by reason and never forwarded; a chain break marks the repo desynchronized (also
persisted) and asks for a resync. Taken-down and over-the-limit accounts are dropped first.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Final

from atcore.frames import AccountEvent, CommitEvent, IdentityEvent, SyncEvent
from relay import validate
from relay.db import Database, accounts
from relay.db.hosts import HostRow
from relay.events import Change, Emitted, RelayLog, event_did, kind_of
from relay.metrics import Metrics
from relay.repostate import RepoState, Verdict

log = logging.getLogger(__name__)

RECEIVED: Final = "relay_events_received_total"
REJECTED: Final = "relay_events_rejected_total"
LENIENT: Final = "relay_lenient_accepts_total"

# Our own reasons, next to relay.repostate.Reason's.
TAKENDOWN: Final = "takendown"
HOST_THROTTLED: Final = "host_throttled"

DesyncHandler = Callable[[str, HostRow], None]


def collections_of(event: CommitEvent) -> tuple[str, ...]:
    """Collections the commit writes records into (creates and updates)."""
    found = {op.path.split("/", 1)[0] for op in event.ops if op.action != "delete"}
    return tuple(sorted(found))


class Ingest:
    def __init__(
        self,
        db: Database,
        events: RelayLog,
        resolver: validate.Resolver,
        metrics: Metrics,
        *,
        lenient: bool = False,
        on_desync: DesyncHandler | None = None,
    ) -> None:
        self.db = db
        self.events = events
        self.resolver = resolver
        self.metrics = metrics
        self.lenient = lenient
        self.on_desync = on_desync
        metrics.declare(RECEIVED, "Upstream events received, by kind")
        metrics.declare(REJECTED, "Upstream events not forwarded, by reason")
        metrics.declare(LENIENT, "Commits accepted only because lenient sync validation is on")

    def reject(self, host: HostRow, reason: str, did: str = "", detail: str = "") -> None:
        self.metrics.inc(REJECTED, reason=reason)
        log.info("dropped event from %s for %s: %s %s", host.hostname, did, reason, detail)

    async def handle(self, host: HostRow, event: Emitted) -> int | None:
        """Process one event from `host`; returns the relay seq it was emitted at, if it was."""
        kind, did = kind_of(event), event_did(event)
        self.metrics.inc(RECEIVED, kind=kind)
        account = await self.db.read(accounts.get, did)
        if account is None:
            account = await self.db.write(
                accounts.create_for_host, did, host.id, host.account_limit
            )
        if account.takedown:
            self.reject(host, TAKENDOWN, did)
            return None
        if account.throttled:
            self.reject(host, HOST_THROTTLED, did)
            return None
        verdict = await self._verify(host.hostname, event, account.state)
        if not verdict.accepted:
            self.reject(host, str(verdict.reason), did, verdict.detail)
            if verdict.state != account.state:
                await self.events.commit(Change(host.id, state=verdict.state))
            if verdict.desynchronized and self.on_desync is not None:
                self.on_desync(did, host)
            return None
        if verdict.lenient:
            self.metrics.inc(LENIENT)
        collections = collections_of(event) if isinstance(event, CommitEvent) else ()
        change = Change(
            host.id,
            state=verdict.state,
            event=event,
            collections=collections,
            cursor=event.seq,
        )
        return await self.events.commit(change)

    async def _verify(self, hostname: str, event: Emitted, state: RepoState) -> Verdict:
        if isinstance(event, CommitEvent):
            return await validate.verify_commit(
                event, state, hostname, self.resolver, lenient=self.lenient
            )
        if isinstance(event, SyncEvent):
            return await validate.verify_sync(event, state, hostname, self.resolver)
        if isinstance(event, IdentityEvent):
            return await validate.verify_identity(event, state, hostname, self.resolver)
        assert isinstance(event, AccountEvent)
        return await validate.verify_account(event, state, hostname, self.resolver)

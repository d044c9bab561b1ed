"""Accepting and reading did:plc operations (plc-did-method-spec-v0.1.md, directory rules).

Writes to one DID are serialised twice over: an asyncio lock per DID keeps this process's
submissions in order, and the store runs read-validate-write as one SQLite transaction with a
unique index forbidding two live successors of one operation, so even writers that bypass the
lock cannot both win.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import weakref
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Final

from atcore.errors import InvalidPlcOperation
from atcore.identity.plc import check_operation
from atcore.identity.plc_log import LogEntry, PlcState, check_next_op
from plc.limits import check_op_rate
from plc.store import Append, PlcStore

Clock = Callable[[], datetime]
PLC_DID_RE: Final = re.compile(r"did:plc:[a-z2-7]{24}")
_ONE_MS: Final = timedelta(milliseconds=1)


def system_clock() -> datetime:
    return datetime.now(UTC)


def _millis(moment: datetime) -> datetime:
    # createdAt is stored with millisecond precision; decide on exactly the stored instant.
    return moment.astimezone(UTC).replace(microsecond=moment.microsecond // 1000 * 1000)


def _state(did: str, log: list[LogEntry]) -> PlcState | None:
    chain = tuple(e for e in log if not e.nullified)
    if not chain:
        return None
    return PlcState(did, chain, frozenset(e.cid for e in log if e.nullified))


class PlcOperations:
    """The directory's domain logic over a PlcStore, with an injectable clock."""

    def __init__(
        self, store: PlcStore, clock: Clock = system_clock, *, rate_limited: bool = True
    ) -> None:
        self._store = store
        self._clock = clock
        self._rate_limited = rate_limited
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    def _lock(self, did: str) -> asyncio.Lock:
        lock = self._locks.get(did)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[did] = lock
        return lock

    async def submit(self, did: str, op: object) -> LogEntry:
        """Validate `op` against the DID's log and store it; InvalidPlcOperation says why not.

        What a client may submit is narrower (plc.limits.check_incoming_op, run by the route);
        this holds the rules of the log itself, and the per-DID rate limit.
        """
        if PLC_DID_RE.fullmatch(did) is None:
            raise InvalidPlcOperation(f"not a did:plc identifier: {did[:80]!r}")
        checked = check_operation(op)

        def decide(log: list[LogEntry]) -> Append:
            now = _millis(self._clock())
            if log and now <= log[-1].created_at:
                # A DID's createdAt values strictly increase: a clock stepping back, or not
                # yet past the last operation's millisecond, must neither reorder the log nor
                # give a recovery the timestamp of what it nullifies (check_next_op refuses).
                now = log[-1].created_at + _ONE_MS
            chain = [e for e in log if not e.nullified]
            accepted = check_next_op(did, chain, checked, now)
            if self._rate_limited and not accepted.nullifies:
                check_op_rate(chain, now)
            return Append(LogEntry(did, checked, accepted.cid, False, now), accepted.nullifies)

        async with self._lock(did):
            try:
                result = await self._store.append(did, decide)
            except sqlite3.IntegrityError as exc:
                raise InvalidPlcOperation(
                    f"conflicting operation for {did}: the log changed concurrently"
                ) from exc
        return result.entry

    async def audit_log(self, did: str) -> list[LogEntry]:
        """Every operation ever accepted for `did` (empty if unknown)."""
        return await self._store.log(did)

    async def state(self, did: str) -> PlcState | None:
        """The DID's current chain, or None if the DID is not registered."""
        return _state(did, await self._store.log(did))

    async def export(self, after: str | int | None, count: int) -> list[tuple[int, LogEntry]]:
        """Export page: by sequence number if `after` is an int, else by createdAt."""
        if isinstance(after, int):
            return await self._store.export_by_seq(after, count)
        return await self._store.export_by_time(after, count)

"""Where a host's stream resumes when its events finish out of order (spec-sync.md, "Firehose").

A host's events are read in order, but events of different DIDs are processed concurrently
(relay.lanes), so they finish out of order. The cursor is the seq of the last event of the
finished prefix, as the reference relay's parallel scheduler keeps it; the events finished
above it are `done`. An event is finished once its change is durable (relay.writer marks it
when the transaction commits) or once it needed no write (rejected, ignored). Each batch of
the log writes the cursor and adds its events above it to the done set, so after a crash the
stream resumes from the cursor and skips the done events: nothing is lost and nothing is
emitted twice. Only
events whose change was written are remembered as done; one that needed no write and finished
above the cursor is checked again after a crash (and again rejected or ignored).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Collection, Iterable


class HostCursor:
    """The events of one host read and not yet in the finished prefix, at most `limit`."""

    def __init__(self, host_id: int, cursor: int, done: Iterable[int], limit: int) -> None:
        self.host_id = host_id
        self.cursor = cursor
        self.limit = limit
        self._open: deque[int] = deque()  # seqs read after the cursor, in order
        self._finished: set[int] = set()  # those of them finished
        self._skip = {seq for seq in done if seq > cursor}  # finished before: not run again
        self.persisted = cursor  # the last cursor written (what it was read from, at first)
        self.progress = asyncio.Event()  # set whenever an event finishes

    def __len__(self) -> int:
        return len(self._open)

    def full(self) -> bool:
        return len(self._open) >= self.limit

    def begin(self, seq: int) -> bool:
        """Note that event `seq` was read; False when it finished before (skip it)."""
        self._open.append(seq)
        if seq in self._skip:
            self._skip.discard(seq)
            self.finish(seq)
            return False
        return True

    def finish(self, seq: int) -> None:
        self._finished.add(seq)
        while self._open and self._open[0] in self._finished:
            self.cursor = self._open.popleft()
            self._finished.discard(self.cursor)
        self.progress.set()

    def advance(self, committing: Collection[int]) -> tuple[int, list[int]]:
        """The cursor once the events `committing` are durable, and those of them above it
        (the done seqs the transaction adds)."""
        cursor = self.cursor
        for seq in self._open:
            if seq not in self._finished and seq not in committing:
                break
            cursor = seq
        return cursor, sorted(seq for seq in committing if seq > cursor)

    def resume(self) -> int:
        """The cursor to reconnect from once nothing is in flight: events read and never
        finished (their write failed) are read again, finished ones skipped."""
        self._skip.update(self._finished)
        self._open.clear()
        self._finished.clear()
        return self.cursor

"""One firehose subscriber's bounded buffer (spec-event-stream.md, "Backpressure")."""

from __future__ import annotations

import asyncio
from collections import deque

from atcore.xrpc.errors import InvalidRequest


class Subscriber:
    """Frames waiting for one connection, shared bytes, never more than `limit` of them.

    Before `live` is set the subscriber is replaying from the log, and an overflow only sets
    `missed` (the dropped frames are in the log, re-read before going live). Once live, an
    overflow means the connection cannot keep up: `push` returns False to leave the fan-out
    and the reader gets `ConsumerTooSlow`.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.frames: deque[tuple[int, bytes]] = deque()
        self.live = False
        self.missed = False
        self.too_slow = False
        self.closed = False
        self._wake = asyncio.Event()

    def push(self, seq: int, frame: bytes) -> bool:
        """Queue a frame; False when the subscriber must leave the fan-out."""
        if self.closed or self.too_slow:
            return False
        if len(self.frames) >= self.limit:
            self.frames.clear()
            if self.live:
                self.too_slow = True
                self._wake.set()
                return False
            self.missed = True
        self.frames.append((seq, frame))
        self._wake.set()
        return True

    async def next_batch(self) -> list[tuple[int, bytes]] | None:
        """Every queued frame (waiting for one), or None once the subscriber is closed."""
        while not self.frames and not self.too_slow and not self.closed:
            self._wake.clear()
            await self._wake.wait()
        if self.too_slow:
            raise InvalidRequest("subscriber fell too far behind the stream", "ConsumerTooSlow")
        if self.closed:
            return None
        batch = list(self.frames)
        self.frames.clear()
        return batch

    def close(self) -> None:
        """End the stream (server shutdown)."""
        self.closed = True
        self._wake.set()

"""Replay-then-live fan-out of an append-only event log (spec-event-stream.md, "Sequence Numbers").

The owner of a durable log (the PDS sequencer, the relay) hands every frame to `publish` once
it is durable, in seq order, encoded once; `subscribe(cursor)` yields the frames after
`cursor` read back from the log through the owner's `read_after` callback, then the live ones,
with no gap and no duplicate. Each subscriber has a bounded buffer: while it replays, an
overflow only marks it (the dropped frames are still in the log and are re-read); once live, an
overflow drops it from the fan-out with `ConsumerTooSlow` without slowing anybody else.

Cursor rules (spec-event-stream.md, "Sequence Numbers"): a cursor ahead of the log is refused
with `FutureCursor` before anything is sent; a cursor older than the replay window gets an
`OutdatedCursor` info frame and then everything from the oldest event kept; cursor 0 asks for
the whole window and gets no info frame.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence

from atcore.frames import InfoEvent, encode_frame
from atcore.xrpc.errors import InvalidRequest

__all__ = ["EventLog", "Frames", "OldestSeq", "ReadAfter", "Subscriber"]

Frames = Sequence[tuple[int, bytes]]
# `read_after(seq, limit)`: up to `limit` (seq, frame) pairs with seq above `seq`, in order.
ReadAfter = Callable[[int, int], Awaitable[Frames]]
# `oldest()`: the lowest seq still in the log, None when it is empty.
OldestSeq = Callable[[], Awaitable[int | None]]

DEFAULT_BUFFER = 1000
DEFAULT_PAGE = 500


class Subscriber:
    """Frames waiting for one connection (shared bytes), never more than `limit` of them."""

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

    async def next_batch(self, most: int) -> list[tuple[int, bytes]] | None:
        """The oldest queued frames, at most `most` (waiting for one), or None once the
        subscriber is closed. A bound on a run bounds what one send holds at once, however far
        behind the subscriber is."""
        while not self.frames and not self.too_slow and not self.closed:
            self._wake.clear()
            await self._wake.wait()
        if self.too_slow:
            raise InvalidRequest("subscriber fell too far behind the stream", "ConsumerTooSlow")
        if self.closed:
            return None
        frames = self.frames
        if len(frames) <= most:
            batch = list(frames)
            frames.clear()
        else:
            batch = [frames.popleft() for _ in range(most)]
        return batch

    def close(self) -> None:
        """End the stream (server shutdown)."""
        self.closed = True
        self._wake.set()


class EventLog:
    """The live subscribers of one log whose durable head is `head`."""

    def __init__(
        self,
        read_after: ReadAfter,
        oldest: OldestSeq,
        *,
        head: int = 0,
        buffer: int = DEFAULT_BUFFER,
        page: int = DEFAULT_PAGE,
    ) -> None:
        if buffer < 1 or page < 1:
            raise ValueError("buffer and page must be positive")
        self._read_after = read_after
        self._oldest = oldest
        self.head = head  # highest seq that is durable and handed to the fan-out
        self.buffer = buffer
        self.page = page
        self._subscribers: set[Subscriber] = set()

    @property
    def consumers(self) -> int:
        return len(self._subscribers)

    def publish(self, seq: int, frame: bytes) -> None:
        """Hand a durable frame to every subscriber; seqs must be published in order."""
        if seq <= self.head:
            raise ValueError(f"seq {seq} published after {self.head}")
        self.head = seq
        dropped = [sub for sub in self._subscribers if not sub.push(seq, frame)]
        for sub in dropped:
            self._subscribers.discard(sub)

    def close(self) -> None:
        """End every subscriber's stream."""
        for sub in list(self._subscribers):
            sub.close()
        self._subscribers.clear()

    async def subscribe(self, cursor: int | None) -> AsyncIterator[bytes]:
        """The frames of subscribe_batches, one by one."""
        batches = self.subscribe_batches(cursor)
        try:
            async for batch in batches:
                for frame in batch:
                    yield frame
        finally:
            await batches.aclose()  # leave the fan-out now, not when collected

    async def subscribe_batches(self, cursor: int | None) -> AsyncGenerator[list[bytes], None]:
        """Frames for one subscriber, in runs of whatever is ready: replay after `cursor`
        (a page at a time), then live (what queued since the last run, a page at most), with
        no gap and no duplicate.

        Raises InvalidRequest `FutureCursor` before anything is sent when `cursor` is ahead of
        the log, and `ConsumerTooSlow` when this subscriber's buffer overflowed while live.
        """
        if cursor is not None and cursor > self.head:
            message = f"cursor {cursor} is ahead of the stream (at {self.head})"
            raise InvalidRequest(message, "FutureCursor")
        # Join the fan-out first: frames published during the replay wait in the buffer.
        sub = Subscriber(self.buffer)
        self._subscribers.add(sub)
        try:
            last = self.head
            if cursor is not None:
                last = cursor
                oldest = await self._oldest()
                if cursor != 0 and oldest is not None and cursor < oldest - 1:
                    message = "cursor is older than the replay window; starting at the oldest"
                    yield [encode_frame(InfoEvent("OutdatedCursor", message))]
                while True:
                    page = await self._read_after(last, self.page)
                    if page:
                        last = page[-1][0]
                        yield [frame for _, frame in page]
                    if len(page) == self.page:
                        continue
                    if not sub.missed:
                        break
                    # The buffer overflowed during the replay: what it dropped is in the log.
                    sub.missed = False
            sub.live = True
            while (batch := await sub.next_batch(self.page)) is not None:
                # Frames queued during the replay may already have been read from the log.
                frames = [frame for seq, frame in batch if seq > last]
                if frames:
                    last = batch[-1][0]
                    yield frames
        finally:
            self._subscribers.discard(sub)

"""One host's events, in order per DID, different DIDs at once (indigo's parallel scheduler).

A first-seen DID waits for its identity lookup (a PLC 50-200 ms away) before its events can be
checked; handled strictly in the host's order, every other account of the host would wait
too. Here each DID has a lane: its events run one after the other, in the order they were
added, while lanes of other DIDs run concurrently, at most `concurrency` at once. A runner
task takes a ready lane, empties it, then takes the next; runners start on demand and end
when no lane is ready, so an idle host holds no task.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from itertools import islice
from typing import Generic, TypeVar

T = TypeVar("T")


class Lanes(Generic[T]):
    def __init__(self, run: Callable[[T], Awaitable[None]], concurrency: int) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be positive")
        self._run = run
        self.concurrency = concurrency
        self._lanes: dict[str, deque[T]] = {}  # DID -> its events not yet run (the first runs)
        self._ready: deque[str] = deque()  # lanes waiting for a runner
        self._runners: set[asyncio.Task[None]] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self.error: BaseException | None = None  # the first failure: the caller stops

    def add(self, did: str, item: T) -> None:
        lane = self._lanes.get(did)
        if lane is not None:
            lane.append(item)
            return
        self._lanes[did] = deque((item,))
        self._ready.append(did)
        self._idle.clear()
        if len(self._runners) < self.concurrency:
            self._runners.add(asyncio.create_task(self._runner()))

    def waiting(self, did: str) -> Iterator[T]:
        """The events of `did` added and not yet run, behind the one running."""
        lane = self._lanes.get(did)
        return iter(()) if lane is None else islice(lane, 1, None)

    async def _runner(self) -> None:
        try:
            while self._ready:
                did = self._ready.popleft()
                lane = self._lanes[did]
                while lane:
                    await self._run(lane[0])
                    lane.popleft()
                del self._lanes[did]
        except Exception as exc:  # the caller learns of it through `error`
            self.error = self.error or exc
        finally:
            # Synchronously with the last look at _ready: `add` never counts a runner that
            # will not take its lane.
            runner = asyncio.current_task()
            assert runner is not None
            self._runners.discard(runner)
            if not self._runners:
                self._idle.set()

    async def drain(self) -> None:
        """Wait until every event added has run (or a run failed)."""
        await self._idle.wait()

    async def close(self) -> None:
        """Cancel the runs in progress and forget what waits."""
        runners = list(self._runners)
        for runner in runners:
            runner.cancel()
        await asyncio.gather(*runners, return_exceptions=True)
        self._lanes.clear()
        self._ready.clear()

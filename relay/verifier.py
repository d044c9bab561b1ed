"""The costly half of #commit verification on other cores (spec-sync.md, "Message Validation
Checklist"; relay.validate.check_commit).

Parsing the CAR, checking the signature and inverting the ops depend only on the event and the
DID's signing key, so they can run ahead of the repo's state checks, in worker processes
(runtime.workers.Pool, which batches them); results come back as futures, which relay.ingest
consumes in each host's order. With no workers, `check` returns None and relay.validate does
the whole check inline; a check whose worker dies fails with WorkerFailed (relay.ingest then
checks inline).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Final

from atcore.frames import CommitEvent, WireCommit, commit_from_wire, commit_to_wire
from atcore.keys import PublicKey, cached_public_key
from relay.validate import CommitCheck, check_commit
from runtime.workers import Pool

# Workers yield the CPU to the serving process (and anything else on the machine): they soak
# up spare cycles, but never delay reading upstreams or writing to subscribers.
WORKER_NICENESS: Final = 10

Job = tuple[WireCommit, tuple[str, bytes] | None]


def check_batch(jobs: Sequence[Job]) -> list[CommitCheck]:
    """Run in a worker: check_commit for each (event, signing key as (curve, point))."""
    return [
        check_commit(commit_from_wire(event), None if key is None else cached_public_key(*key))
        for event, key in jobs
    ]


class Verifier:
    """`workers` processes checking commits in batches (none: checks stay inline), started
    by `start` (or else by the first check) in its event loop."""

    def __init__(self, workers: int) -> None:
        self._pool: Pool[CommitCheck] = Pool(check_batch, workers, WORKER_NICENESS)
        self.workers = workers

    async def start(self) -> None:
        """Start the workers and wait until each is ready: a relay's first commits (a cold
        start's thousands) would otherwise wait while they spawn and import (~0.15 s of CPU
        each, more on a busy machine)."""
        await self._pool.ready()

    def pids(self) -> list[int]:
        """Process ids of the running workers."""
        return self._pool.pids()

    def check(
        self, event: CommitEvent, key: PublicKey | None
    ) -> asyncio.Future[CommitCheck] | None:
        """Queue `event`'s check with `key` (the DID's current signing key, if known); None
        when it must be done inline (no workers, or none running)."""
        if not self._pool.workers:
            return None
        wire_key = None if key is None else (key.curve, key.compressed())
        return self._pool.submit((commit_to_wire(event), wire_key))

    async def close(self) -> None:
        """Stop the workers and cancel every check not answered yet."""
        await self._pool.close()

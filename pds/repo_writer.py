"""Repository writes of the PDS: one signed commit per call, durable with its firehose event.

Spec: spec-repository.md, spec-sync.md. Order of a write, under the account's lock:
1. prepare (names, lexicon validation, record encoding) on the event loop;
2. one actor-store transaction (worker thread) builds and stores the commit and puts the
   encoded `#commit` event in the account's outbox;
3. the sequencer appends the event to the global log; only then is the write acknowledged.
A crash between 2 and 3 leaves an outbox row that `Sequencer.start` sequences on restart, so
the repo change and its event are durable together or not at all.
"""

from __future__ import annotations

import functools
from typing import Protocol

from atcore.cid import CID
from atcore.lexicon import Catalog
from atcore.syntax.did import parse_did
from atcore.xrpc.errors import InvalidRequest
from pds.actor_store import ActorStores, RepoMissing
from pds.repo_commit import CommitResult, commit_writes, genesis
from pds.repo_prepare import Write, prepare_write
from pds.sequencer import Sequencer, now_iso

__all__ = ["CommitResult", "MAX_WRITES", "RepoContext", "Write", "apply_writes", "init_repo"]


class RepoContext(Protocol):
    """The parts of the app context repo writes use (AppContext has them all)."""

    @property
    def actors(self) -> ActorStores: ...
    @property
    def sequencer(self) -> Sequencer: ...
    @property
    def catalog(self) -> Catalog: ...


# com.atproto.repo.applyWrites accepts at most this many writes (its lexicon's maxLength).
MAX_WRITES = 200


async def init_repo(ctx: RepoContext, did: str) -> CommitResult:
    """The genesis commit of a new account's empty repo, with its `#commit` and `#sync`."""
    store = await ctx.actors.open(did)
    key = await ctx.actors.signing_key(did)
    fn = functools.partial(genesis, did=parse_did(did), key=key, clock=ctx.actors.clock)
    async with ctx.actors.lock(did):
        with ctx.sequencer.outbox_write():
            result = await store.transact(functools.partial(fn, now=now_iso()))
            await _sequence(ctx, did, result)
            store.sequenced_upto = result.outbox_id
    return result


async def _sequence(ctx: RepoContext, did: str, result: CommitResult) -> None:
    await ctx.sequencer.append(did, "commit", result.rev, result.event)
    for event in result.more:
        await ctx.sequencer.append(did, "sync", result.rev, event)


async def apply_writes(
    ctx: RepoContext, did: str, writes: list[Write], swap_commit: CID | None = None
) -> CommitResult | None:
    """Apply `writes` atomically as one commit; None when nothing changed (deleting nothing).

    Raises InvalidRequest (InvalidSwap, RecordNotFound, RepoNotFound, validation failures).
    """
    if not writes:
        raise InvalidRequest("no writes to apply")
    if len(writes) > MAX_WRITES:
        raise InvalidRequest(f"too many writes: at most {MAX_WRITES} per call")
    prepared = [prepare_write(ctx.catalog, ctx.actors.clock, w) for w in writes]
    paths = [p.path for p in prepared]
    if len(set(paths)) != len(paths):
        raise InvalidRequest("a batch may write each record only once")
    try:
        store = await ctx.actors.open(did)
        key = await ctx.actors.signing_key(did)
    except RepoMissing:
        raise InvalidRequest(f"Could not find repo: {did}", "RepoNotFound") from None
    async with ctx.actors.lock(did):
        with ctx.sequencer.outbox_write():
            fn = functools.partial(
                commit_writes,
                did=parse_did(did),
                key=key,
                clock=ctx.actors.clock,
                writes=prepared,
                swap_commit=swap_commit,
                now=now_iso(),
                sequenced_upto=store.sequenced_upto,
            )
            result = await store.transact(fn)
            if result is None:
                return None
            await _sequence(ctx, did, result)
            store.sequenced_upto = result.outbox_id
    if result.dropped_blobs:
        ctx.actors.blobs.delete(did, list(result.dropped_blobs))
    return result

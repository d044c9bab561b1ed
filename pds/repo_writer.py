"""Repository writes of the PDS: signed commits, durable with their firehose events.

Spec: spec-repository.md, spec-sync.md. Order of a write:
1. prepare (names, lexicon validation, record encoding) on the event loop, then queue the batch
   on its account;
2. whoever holds the account's lock takes the queued batches (a group: at most 200 ops, about
   a megabyte of records, distinct records, a swapCommit batch alone) and, in ONE worker-thread
   call, runs one actor-store transaction that builds and stores their one commit and puts the
   encoded `#commit` event in the account's outbox, then appends the event to the global log;
3. only then is each caller answered, with the shared commit and its own records.
A crash between the two transactions leaves an outbox row that `Sequencer.start` sequences on
restart, so the repo change and its event are durable together or not at all.
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass
from typing import Protocol, TypeVar

from atcore.cid import CID
from atcore.keys import PrivateKey
from atcore.lexicon import Catalog
from atcore.syntax.datetime import now_iso
from atcore.syntax.did import parse_did
from atcore.xrpc.errors import InvalidRequest
from pds.actor_store import ActorStores, RepoMissing
from pds.actor_store.store import ActorStore
from pds.repo_commit import Batch, CommitResult, GroupCommit, commit_writes, genesis
from pds.repo_prepare import Write, prepare_write
from pds.sequencer import SeqEvent, Sequencer

__all__ = ["CommitResult", "MAX_WRITES", "RepoContext", "Write", "apply_writes", "init_repo"]

T = TypeVar("T")


class RepoContext(Protocol):
    """The parts of the app context repo writes use (AppContext has them all)."""

    @property
    def actors(self) -> ActorStores: ...
    @property
    def sequencer(self) -> Sequencer: ...
    @property
    def catalog(self) -> Catalog: ...


# com.atproto.repo.applyWrites accepts at most this many writes (its lexicon's maxLength), and
# a #commit carries at most as many ops (spec-sync.md): the bound of a group too.
MAX_WRITES = 200
# Record bytes one group commit may carry: a #commit's blocks are capped at 2,000,000 bytes
# (spec-sync.md), and the rest of the budget is for the MST nodes and proof.
GROUP_RECORD_BYTES = 1_000_000


@dataclass
class _Queued:
    batch: Batch
    done: asyncio.Future[CommitResult | None]

    @property
    def size(self) -> int:
        return sum(len(w.block or b"") for w in self.batch.writes)


async def init_repo(ctx: RepoContext, did: str) -> CommitResult:
    """The genesis commit of a new account's empty repo, with its `#commit` and `#sync`."""
    store = await ctx.actors.open(did)
    key = await ctx.actors.signing_key(did)
    fn = functools.partial(
        genesis, did=parse_did(did), key=key, clock=ctx.actors.clock, now=now_iso()
    )
    async with ctx.actors.lock(did):
        with ctx.sequencer.outbox_write():
            work = store.run(functools.partial(_genesis_logged, ctx.sequencer, store, fn))
            if await _run_to_end(work):
                raise asyncio.CancelledError
            return work.result()


def _genesis_logged(
    sequencer: Sequencer, store: ActorStore, fn: functools.partial[CommitResult]
) -> CommitResult:
    result = store.transact_sync(fn)
    _log(sequencer, store, result)
    return result


def _log(sequencer: Sequencer, store: ActorStore, result: CommitResult) -> None:
    events: list[tuple[str, str | None, SeqEvent]] = [("commit", result.rev, result.event)]
    events += [("sync", result.rev, event) for event in result.more]
    sequencer.log_sync(store.did, events)
    store.sequenced_upto = result.outbox_id


async def apply_writes(
    ctx: RepoContext, did: str, writes: list[Write], swap_commit: CID | None = None
) -> CommitResult | None:
    """Apply `writes` atomically, in a commit shared with concurrent callers' batches; None
    when nothing changed (deleting nothing).

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
    mine = _Queued(Batch(prepared, swap_commit), asyncio.get_running_loop().create_future())
    queue: list[_Queued] = ctx.actors.write_queue(did)
    queue.append(mine)
    try:
        async with ctx.actors.lock(did):
            # Batches queued before ours were committed by earlier lock holders; ours may
            # already be done by one of them too.
            while not mine.done.done():
                await _commit_group(ctx, store, key, _take_group(queue))
    except asyncio.CancelledError:
        # A caller that gives up before its batch joined a group withdraws it; once in a
        # group, it is committed with the others.
        if mine in queue:
            queue.remove(mine)
        raise
    return mine.done.result()


def _take_group(queue: list[_Queued]) -> list[_Queued]:
    """The longest prefix of the queue that one commit may carry; it leaves the queue."""
    group = [queue[0]]
    ops, size = len(queue[0].batch.writes), queue[0].size
    paths = {w.path for w in queue[0].batch.writes}
    if queue[0].batch.swap_commit is None:
        for item in queue[1:]:
            batch = item.batch
            ops += len(batch.writes)
            size += item.size
            if batch.swap_commit is not None or ops > MAX_WRITES or size > GROUP_RECORD_BYTES:
                break
            if any(w.path in paths for w in batch.writes):
                break  # its swaps and existence checks must see the earlier batch committed
            paths.update(w.path for w in batch.writes)
            group.append(item)
    del queue[: len(group)]
    return group


async def _commit_group(
    ctx: RepoContext, store: ActorStore, key: PrivateKey, group: list[_Queued]
) -> None:
    """Commit `group` and answer its callers, each with its own outcome."""
    fn = functools.partial(
        commit_writes,
        did=parse_did(store.did),
        key=key,
        clock=ctx.actors.clock,
        batches=[item.batch for item in group],
        now=now_iso(),
        sequenced_upto=store.sequenced_upto,
    )
    with ctx.sequencer.outbox_write():
        work = store.run(functools.partial(_group_logged, ctx.sequencer, store, fn))
        cancelled = await _run_to_end(work)
    failure = work.exception()
    outcomes = [failure] * len(group) if failure is not None else work.result().outcomes
    for item, outcome in zip(group, outcomes, strict=True):
        if item.done.done():
            continue
        if isinstance(outcome, BaseException):
            item.done.set_exception(outcome)
        else:
            item.done.set_result(outcome)
    if failure is None and (commit := work.result().commit) is not None and commit.dropped_blobs:
        ctx.actors.blobs.delete(store.did, list(commit.dropped_blobs))
    if cancelled:
        raise asyncio.CancelledError


def _group_logged(
    sequencer: Sequencer, store: ActorStore, fn: functools.partial[GroupCommit]
) -> GroupCommit:
    """The worker-thread half of a group: its transaction, then its event in the log."""
    outcome = store.transact_sync(fn)
    if outcome.commit is not None:
        _log(sequencer, store, outcome.commit)
    return outcome


async def _run_to_end(work: asyncio.Future[T]) -> bool:
    """Wait for a worker-thread call to end even if the waiting task is cancelled meanwhile:
    the account's lock stays held until then and every caller of the group gets its answer.
    Returns whether a cancellation arrived (the caller re-raises it afterwards)."""
    cancelled = False
    while not work.done():
        try:
            await asyncio.shield(work)
        except asyncio.CancelledError:
            cancelled = True
        except Exception:  # noqa: S110 - the caller reads it from `work`
            pass
    return cancelled

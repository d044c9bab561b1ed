"""Group commits: concurrent write batches to one account share one signed commit and #commit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import TypeVar

import pytest

from atcore import cbor
from atcore.cid import CID, cid_for_cbor
from atcore.frames import CommitEvent
from atcore.xrpc.errors import InvalidRequest
from pds.repo_commit import CommitResult
from pds.repo_writer import MAX_WRITES, Write, apply_writes
from tests.pds.repo_env import RepoEnv, check_commit_event, repo_env

ALICE = "did:plc:alice234567abcdefghijklm"
POST = "app.bsky.feed.post"
T = TypeVar("T")


def post(text: str) -> dict[str, object]:
    return {"$type": POST, "text": text, "createdAt": "2024-01-01T00:00:00.000Z"}


def create(
    env: RepoEnv, text: str, rkey: str | None = None, swap_commit: CID | None = None
) -> Awaitable[CommitResult | None]:
    return apply_writes(env, ALICE, [Write("create", POST, rkey, post(text))], swap_commit)


def update(env: RepoEnv, rkey: str, text: str, swap: CID) -> Awaitable[CommitResult | None]:
    write = Write("update", POST, rkey, post(text), swap=True, swap_record=swap)
    return apply_writes(env, ALICE, [write])


def path_of(result: CommitResult) -> str:
    return result.results[0].uri.split("/", 3)[3]


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[RepoEnv]:
    async with repo_env(tmp_path) as env:
        yield env


async def queued(env: RepoEnv, calls: list[Awaitable[T]]) -> list[asyncio.Task[T]]:
    """Start `calls` while the account's lock is held, so all of them queue for one group."""
    async with env.actors.lock(ALICE):
        tasks = [asyncio.ensure_future(call) for call in calls]
        while len(env.actors.write_queue(ALICE)) < len(calls):
            await asyncio.sleep(0.001)
    return tasks


async def commits_since(env: RepoEnv, seq: int) -> list[CommitEvent]:
    return [e for e in await env.events(seq) if isinstance(e, CommitEvent)]


async def test_queued_creates_share_one_verifiable_commit(env: RepoEnv) -> None:
    key = await env.new_account(ALICE)
    start = env.sequencer.head
    calls = [create(env, f"p{i}") for i in range(30)]
    results = await asyncio.gather(*await queued(env, calls))
    (event,) = await commits_since(env, start)
    check_commit_event(event, key.public_key())
    assert len(event.ops) == 30
    uris = set()
    for i, result in enumerate(results):
        assert result is not None and (result.cid, result.rev) == (event.commit, event.rev)
        (write,) = result.results
        assert write.cid == cid_for_cbor(cbor.encode(post(f"p{i}")))
        uris.add(write.uri)
    assert uris == {f"at://{ALICE}/{op.path}" for op in event.ops}
    # Answered only once the event is durable and handed to the fan-out.
    assert env.sequencer.head >= event.seq


async def test_many_concurrent_writers_each_get_their_record(env: RepoEnv) -> None:
    key = await env.new_account(ALICE)
    start = env.sequencer.head

    async def writer(n: int) -> list[tuple[str, CID, str]]:
        out = []
        for i in range(15):
            result = await create(env, f"{n}.{i}")
            assert result is not None
            (write,) = result.results
            assert write.cid is not None
            out.append((write.uri, write.cid, result.rev))
        return out

    answers = [a for batch in await asyncio.gather(*(writer(n) for n in range(8))) for a in batch]
    events = await commits_since(env, start)
    assert len(events) < len(answers)  # writers queued behind each other shared commits
    ops = {f"at://{ALICE}/{op.path}": op.cid for e in events for op in e.ops}
    assert ops == {uri: cid for uri, cid, _ in answers}
    revs = [e.rev for e in events]
    assert revs == sorted(set(revs))
    assert {rev for _, _, rev in answers} == set(revs)
    for before, event in zip(events, events[1:], strict=False):
        assert event.since == before.rev and event.prev_data is not None
        check_commit_event(event, key.public_key())


async def test_swap_record_conflict_fails_only_its_caller(env: RepoEnv) -> None:
    key = await env.new_account(ALICE)
    first = await apply_writes(env, ALICE, [Write("create", POST, "3kaaaaaaaaaaa", post("v1"))])
    assert first is not None and first.results[0].cid is not None
    start = env.sequencer.head
    stale = cid_for_cbor(cbor.encode(post("never")))
    calls = [
        create(env, "a"),
        apply_writes(
            env,
            ALICE,
            [Write("update", POST, "3kaaaaaaaaaaa", post("v2"), swap=True, swap_record=stale)],
        ),
        create(env, "b"),
        # Exists already: this batch fails alone, like the swap above.
        apply_writes(env, ALICE, [Write("create", POST, "3kaaaaaaaaaaa", post("dup"))]),
        apply_writes(env, ALICE, [Write("delete", POST, "3kzzzzzzzzzzz", if_exists=True)]),
    ]
    tasks = await queued(env, calls)
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    a, swap, b, dup, noop = outcomes
    assert isinstance(swap, InvalidRequest) and swap.error == "InvalidSwap"
    assert isinstance(dup, InvalidRequest) and "already exists" in str(dup)
    assert noop is None
    assert isinstance(a, CommitResult) and isinstance(b, CommitResult) and a.rev == b.rev
    (event,) = await commits_since(env, start)
    check_commit_event(event, key.public_key())
    assert [op.path for op in event.ops] == [
        a.results[0].uri.split("/", 3)[3],
        b.results[0].uri.split("/", 3)[3],
    ]


async def test_swaps_see_the_earlier_queued_batches(env: RepoEnv) -> None:
    key = await env.new_account(ALICE)
    rkey = "3kaaaaaaaaaaa"
    created = await apply_writes(env, ALICE, [Write("create", POST, rkey, post("v1"))])
    assert created is not None
    v1 = created.results[0].cid
    v2 = cid_for_cbor(cbor.encode(post("v2")))
    start = env.sequencer.head
    calls = [
        update(env, rkey, "v2", v1),
        # Still names v1, but the batch queued before it replaced v1: refused.
        update(env, rkey, "v3", v1),
        update(env, rkey, "v4", v2),
    ]
    first, stale, third = await asyncio.gather(*await queued(env, calls), return_exceptions=True)
    assert isinstance(first, CommitResult) and isinstance(third, CommitResult)
    assert isinstance(stale, InvalidRequest) and stale.error == "InvalidSwap"
    events = await commits_since(env, start)
    assert [e.rev for e in events] == [first.rev, third.rev] and first.rev < third.rev
    assert [(op.action, op.prev, op.cid) for e in events for op in e.ops] == [
        ("update", v1, v2),
        ("update", v2, third.results[0].cid),
    ]
    for event in events:
        check_commit_event(event, key.public_key())


async def test_swap_commit_batch_commits_alone(env: RepoEnv) -> None:
    key = await env.new_account(ALICE)
    head = await create(env, "x")
    assert head is not None
    start = env.sequencer.head
    calls = [
        create(env, "swap", swap_commit=head.cid),
        create(env, "a"),
        # Its swapCommit names the head the first batch moved on from.
        create(env, "late", swap_commit=head.cid),
        create(env, "b"),
    ]
    swapped, a, late, b = await asyncio.gather(*await queued(env, calls), return_exceptions=True)
    assert isinstance(late, InvalidRequest) and late.error == "InvalidSwap"
    assert isinstance(swapped, CommitResult) and isinstance(a, CommitResult)
    assert isinstance(b, CommitResult)
    events = await commits_since(env, start)
    assert [len(e.ops) for e in events] == [1, 1, 1]
    assert [e.rev for e in events] == [swapped.rev, a.rev, b.rev]
    for event in events:
        check_commit_event(event, key.public_key())


async def test_groups_respect_the_op_limit(env: RepoEnv) -> None:
    key = await env.new_account(ALICE)
    start = env.sequencer.head
    batch = MAX_WRITES // 2 + 10
    calls = [
        apply_writes(
            env, ALICE, [Write("create", POST, None, post(f"{n}.{i}")) for i in range(batch)]
        )
        for n in range(3)
    ]
    results = await asyncio.gather(*await queued(env, calls))
    events = await commits_since(env, start)
    assert [len(e.ops) for e in events] == [batch] * 3
    assert len({r.rev for r in results if r is not None}) == 3
    for event in events:
        check_commit_event(event, key.public_key())


async def test_groups_respect_the_event_size_limit(env: RepoEnv) -> None:
    key = await env.new_account(ALICE)
    start = env.sequencer.head
    big = "x" * 300_000
    calls = [
        apply_writes(env, ALICE, [Write("create", "com.example.big", None, {"v": big, "n": n})])
        for n in range(4)
    ]
    await asyncio.gather(*await queued(env, calls))
    events = await commits_since(env, start)
    assert [len(e.ops) for e in events] == [3, 1]
    assert all(len(e.blocks) < 2_000_000 for e in events)
    for event in events:
        check_commit_event(event, key.public_key())


async def test_cancelled_leader_still_answers_its_group(env: RepoEnv) -> None:
    key = await env.new_account(ALICE)
    start = env.sequencer.head
    tasks = await queued(env, [create(env, f"c{i}") for i in range(6)])
    queue = env.actors.write_queue(ALICE)
    while queue:  # the first caller took the lock and the whole queue into its group
        await asyncio.sleep(0)
    tasks[0].cancel()
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(outcomes[0], asyncio.CancelledError)
    answered = [o for o in outcomes[1:] if isinstance(o, CommitResult)]
    assert len(answered) == 5
    (event,) = await commits_since(env, start)
    check_commit_event(event, key.public_key())
    # The cancelled caller's batch was in the group: committed though nobody awaits it.
    assert len(event.ops) == 6 and {path_of(r) for r in answered} < {op.path for op in event.ops}
    after = await create(env, "after")
    assert after is not None and after.since == event.rev


async def test_caller_cancelled_while_queued_withdraws_its_batch(env: RepoEnv) -> None:
    key = await env.new_account(ALICE)
    start = env.sequencer.head
    async with env.actors.lock(ALICE):
        tasks = [asyncio.ensure_future(create(env, f"q{i}")) for i in range(4)]
        while len(env.actors.write_queue(ALICE)) < 4:
            await asyncio.sleep(0.001)
        tasks[2].cancel()
        await asyncio.sleep(0)
        assert len(env.actors.write_queue(ALICE)) == 3
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(outcomes[2], asyncio.CancelledError)
    (event,) = await commits_since(env, start)
    check_commit_event(event, key.public_key())
    assert len(event.ops) == 3

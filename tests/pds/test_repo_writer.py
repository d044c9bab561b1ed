"""Repo writes: one signed commit per call, swaps, validation, and sync 1.1 commit events."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from atcore import cbor
from atcore.car import read_car
from atcore.cid import cid_for_cbor
from atcore.commit import decode_commit, verify_commit
from atcore.frames import CommitEvent, SyncEvent
from atcore.mst import tree
from atcore.syntax.tid import TidClock
from atcore.xrpc.errors import InvalidRequest
from pds.repo_writer import Write, apply_writes, init_repo
from tests.pds.repo_env import RepoEnv, check_commit_event, repo_env

ALICE = "did:plc:alice234567abcdefghijklm"
BOB = "did:plc:bob4567abcdefghijklmnopq"
POST = "app.bsky.feed.post"
_CLOCK = TidClock()
RK = {name: str(_CLOCK.next()) for name in ("a", "b", "c", "k", "t", "u", "new", "zzz")}


def post(text: str) -> dict[str, object]:
    return {"$type": POST, "text": text, "createdAt": "2024-01-01T00:00:00.000Z"}


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[RepoEnv]:
    async with repo_env(tmp_path) as env:
        yield env


async def test_genesis_commit_and_sync(env: RepoEnv) -> None:
    key = await env.new_account(ALICE)
    commit, sync = await env.events()
    assert isinstance(commit, CommitEvent) and isinstance(sync, SyncEvent)
    assert commit.prev_data is None and commit.since is None and commit.ops == ()
    assert not commit.rebase and not commit.too_big and commit.blobs == ()
    check_commit_event(commit, key.public_key())
    car = read_car(sync.blocks)
    assert car.root == commit.commit and list(car.blocks) == [commit.commit]
    assert sync.rev == commit.rev
    head = decode_commit(car.blocks[commit.commit])
    assert head.data == tree.EMPTY_ROOT and verify_commit(head, key.public_key())
    with pytest.raises(FileExistsError):
        await env.actors.create(ALICE, key)
    with pytest.raises(InvalidRequest, match="already exists"):
        await init_repo(env, ALICE)


async def test_writes_make_verifiable_commits_with_increasing_revs(env: RepoEnv) -> None:
    key = await env.new_account(ALICE)
    rng = random.Random(7)
    live: dict[str, dict[str, object]] = {}
    revs = []
    for step in range(60):
        writes = []
        for _ in range(rng.randint(1, 4)):
            choice = rng.random()
            existing = sorted(set(live) - {w.rkey for w in writes})
            if existing and choice < 0.25:
                rkey = rng.choice(existing)
                writes.append(Write("delete", POST, rkey))
            elif existing and choice < 0.5:
                rkey = rng.choice(existing)
                writes.append(Write("update", POST, rkey, post(f"edit {step}")))
            else:
                writes.append(Write("create", POST, None, post(f"post {step}")))
        result = await apply_writes(env, ALICE, writes)
        assert result is not None
        revs.append(result.rev)
        for w, r in zip(writes, result.results, strict=True):
            rkey = r.uri.rsplit("/", 1)[1]
            if w.action == "delete":
                del live[rkey]
            else:
                live[rkey] = w.record
                assert r.validation == "valid" and r.cid is not None
    assert revs == sorted(revs) and len(set(revs)) == len(revs)
    events = [e for e in await env.events() if isinstance(e, CommitEvent)]
    assert [e.rev for e in events[1:]] == revs
    for before, event in zip(events, events[1:], strict=False):
        check_commit_event(event, key.public_key())
        assert event.since == before.rev
        assert event.prev_data is not None
    store = await env.actors.open(ALICE)
    rows = await store.read(lambda sql: sql.list_records(POST, 1000, None, False))
    assert {r.rkey: cbor.decode(r.value) for r in rows} == live
    root = await store.read(lambda sql: sql.root())
    assert root is not None
    for row in rows:
        assert tree.get(store._read_sql, root.data, f"{POST}/{row.rkey}") == row.cid


async def test_swaps(env: RepoEnv) -> None:
    await env.new_account(ALICE)
    first = await apply_writes(env, ALICE, [Write("create", POST, RK["a"], post("a"))])
    assert first is not None
    stale = first.cid
    second = await apply_writes(env, ALICE, [Write("create", POST, RK["b"], post("b"))], stale)
    assert second is not None
    with pytest.raises(InvalidRequest) as caught:
        await apply_writes(env, ALICE, [Write("create", POST, RK["c"], post("c"))], stale)
    assert caught.value.error == "InvalidSwap"
    a_cid = first.results[0].cid
    wrong = cid_for_cbor(cbor.encode({"x": 1}))
    with pytest.raises(InvalidRequest) as caught:
        await apply_writes(
            env, ALICE, [Write("update", POST, RK["a"], post("a2"), swap=True, swap_record=wrong)]
        )
    assert caught.value.error == "InvalidSwap"
    with pytest.raises(InvalidRequest) as caught:  # swapRecord null: must not exist yet
        await apply_writes(env, ALICE, [Write("update", POST, RK["a"], post("a2"), swap=True)])
    assert caught.value.error == "InvalidSwap"
    ok = await apply_writes(
        env, ALICE, [Write("update", POST, RK["a"], post("a2"), swap=True, swap_record=a_cid)]
    )
    assert ok is not None and ok.results[0].action == "update"
    created = await apply_writes(  # putRecord: swapRecord null creates the record
        env, ALICE, [Write("update", POST, RK["new"], post("n"), swap=True, upsert=True)]
    )
    assert created is not None and created.results[0].action == "create"


async def test_validation_semantics(env: RepoEnv) -> None:
    await env.new_account(ALICE)
    bad = {"$type": POST, "text": "no createdAt"}
    with pytest.raises(InvalidRequest, match="createdAt"):
        await apply_writes(env, ALICE, [Write("create", POST, None, bad)])
    skipped = await apply_writes(env, ALICE, [Write("create", POST, None, bad, validate=False)])
    assert skipped is not None and skipped.results[0].validation is None
    other = "com.example.thing"
    unknown = await apply_writes(env, ALICE, [Write("create", other, None, {"a": 1})])
    assert unknown is not None and unknown.results[0].validation == "unknown"
    with pytest.raises(InvalidRequest, match="Lexicon not found"):
        await apply_writes(env, ALICE, [Write("create", other, None, {"a": 1}, validate=True)])
    with pytest.raises(InvalidRequest, match=r"\$type"):
        await apply_writes(env, ALICE, [Write("create", POST, None, {**post("x"), "$type": other})])
    typed = await apply_writes(
        env,
        ALICE,
        [Write("create", POST, RK["t"], {"text": "t", "createdAt": "2024-01-01T00:00:00Z"})],
    )
    assert typed is not None
    store = await env.actors.open(ALICE)
    row = await store.read(lambda sql: sql.get_record(POST, RK["t"]))
    assert row is not None and cbor.decode(row.value)["$type"] == POST
    # Like the reference, a missing $type is filled in even when validation is skipped.
    untyped = Write("create", POST, RK["u"], {"text": "u"}, validate=False)
    assert await apply_writes(env, ALICE, [untyped]) is not None
    row = await store.read(lambda sql: sql.get_record(POST, RK["u"]))
    assert row is not None and cbor.decode(row.value) == {"$type": POST, "text": "u"}
    with pytest.raises(InvalidRequest):  # an rkey the lexicon's key type (tid) refuses
        await apply_writes(env, ALICE, [Write("create", POST, "self", post("x"))])


async def test_deletes_and_duplicates(env: RepoEnv) -> None:
    await env.new_account(ALICE)
    head = env.sequencer.head
    assert (
        await apply_writes(env, ALICE, [Write("delete", POST, RK["zzz"], if_exists=True)]) is None
    )
    assert env.sequencer.head == head  # no commit, no event
    with pytest.raises(InvalidRequest) as caught:
        await apply_writes(env, ALICE, [Write("delete", POST, RK["zzz"])])
    assert caught.value.error == "RecordNotFound"
    await apply_writes(env, ALICE, [Write("create", POST, RK["k"], post("k"))])
    with pytest.raises(InvalidRequest, match="already exists"):
        await apply_writes(env, ALICE, [Write("create", POST, RK["k"], post("k2"))])
    with pytest.raises(InvalidRequest, match="only once"):
        await apply_writes(
            env,
            ALICE,
            [Write("delete", POST, RK["k"]), Write("create", POST, RK["k"], post("again"))],
        )
    with pytest.raises(InvalidRequest) as caught:
        await apply_writes(
            env, "did:plc:nobody4567abcdefghijklmn", [Write("create", POST, None, post("x"))]
        )
    assert caught.value.error == "RepoNotFound"


async def test_concurrent_writes_serialise_per_account(env: RepoEnv) -> None:
    keys = {ALICE: await env.new_account(ALICE), BOB: await env.new_account(BOB)}
    start = env.sequencer.head

    async def one(did: str, i: int) -> tuple[str, str, str]:
        result = await apply_writes(env, did, [Write("create", POST, None, post(str(i)))])
        assert result is not None
        return did, result.rev, result.results[0].uri

    answers = await asyncio.gather(*(one(did, i) for i in range(40) for did in (ALICE, BOB)))
    assert len({uri for _, _, uri in answers}) == 80
    events = [e for e in await env.events(start) if isinstance(e, CommitEvent)]
    # Concurrent writes to one account may share a commit; every op is in exactly one.
    assert sorted(f"at://{e.repo}/{op.path}" for e in events for op in e.ops) == sorted(
        uri for _, _, uri in answers
    )
    for did in (ALICE, BOB):
        mine = [e for e in events if e.repo == did]
        assert {rev for d, rev, _ in answers if d == did} == {e.rev for e in mine}
        assert [e.rev for e in mine] == sorted({e.rev for e in mine})
        for before, event in zip(mine, mine[1:], strict=False):
            assert event.since == before.rev
            check_commit_event(event, keys[did].public_key())


async def test_a_busy_account_does_not_block_another(env: RepoEnv) -> None:
    await env.new_account(ALICE)
    await env.new_account(BOB)
    async with env.actors.lock(ALICE):  # as if a slow commit of ALICE's were under way
        write = [Write("create", POST, None, post("x"))]
        assert await asyncio.wait_for(apply_writes(env, BOB, write), 5) is not None
        alice = asyncio.create_task(apply_writes(env, ALICE, write))
        await asyncio.sleep(0.05)
        assert not alice.done()  # but ALICE's own writes wait their turn
    assert await alice is not None


async def test_crash_between_store_and_log_is_recovered(tmp_path: Path) -> None:
    import functools

    from atcore.syntax.datetime import now_iso
    from atcore.syntax.did import parse_did
    from pds.repo_commit import Batch, commit_writes
    from pds.repo_prepare import prepare_write

    async with repo_env(tmp_path) as env:
        key = await env.new_account(ALICE)
        await apply_writes(env, ALICE, [Write("create", POST, RK["a"], post("a"))])
        head = env.sequencer.head
        # The account transaction commits, then the process "dies" before the log append.
        store = await env.actors.open(ALICE)
        prepared = [
            prepare_write(env.catalog, env.actors.clock, Write("create", POST, RK["b"], post("b")))
        ]
        group = await store.transact(
            functools.partial(
                commit_writes,
                did=parse_did(ALICE),
                key=key,
                clock=env.actors.clock,
                batches=[Batch(prepared)],
                now=now_iso(),
                sequenced_upto=0,
            )
        )
        lost = group.commit
        assert lost is not None
        env.sequencer._outbox_writes += 1  # as if the append never ran: no clean shutdown
    async with repo_env(tmp_path) as env:
        events = await env.events(head)
        assert len(events) == 1
        event = events[0]
        assert isinstance(event, CommitEvent) and event.rev == lost.rev and event.seq == head + 1
        check_commit_event(event, key.public_key())
        after = await apply_writes(env, ALICE, [Write("create", POST, RK["c"], post("c"))])
        assert after is not None and after.since == lost.rev
    async with repo_env(tmp_path) as env:  # nothing is sequenced twice
        assert [e.seq for e in await env.events(head)] == [head + 1, head + 2]

"""relay.verifier: commit checks in worker processes give the verdicts of inline checks; a
worker that dies fails only its own checks and is replaced; close() leaves no process."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import pickle
import signal
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import pytest

from atcore.cid import cid_for_cbor
from atcore.commit import Commit
from atcore.frames import CommitEvent, IdentityEvent, RepoOp, commit_from_wire, commit_to_wire
from atcore.identity.plc_client import PlcClient
from atcore.identity.resolver import IdentityResolver
from atcore.keys import PublicKey, generate_k256
from atcore.syntax.did import Did
from atcore.syntax.tid import Tid
from relay.db import Database, hosts
from relay.hostcursor import HostCursor
from relay.ingest import RECEIVED, REJECTED, Ingest
from relay.metrics import Metrics
from relay.repostate import Reason
from relay.validate import CommitCheck, check_commit, verify_commit
from relay.verifier import WORKER_NICENESS, Verifier
from relay.writer import Writer
from runtime.workers import BATCH, WorkerFailed
from tests.relay.conftest import Relay, Upstream, wait_until
from tests.relay.fake_pds import PLC_URL, FakeAccount, in_process_plc, post

HOST = "https://pds.example.com"
POST = "app.bsky.feed.post"
# Seconds after which a test gives up on a check: only a hang takes that long.
HANG = 60


@pytest.fixture
async def resolver_and_alice(tmp_path: Path) -> AsyncIterator[tuple[IdentityResolver, FakeAccount]]:
    async with in_process_plc(tmp_path) as http:
        alice = await FakeAccount.create(PlcClient(PLC_URL, http), HOST, "alice.test")
        yield IdentityResolver(PLC_URL, http), alice


@pytest.mark.slow
async def test_worker_checks_match_inline_checks(
    resolver_and_alice: tuple[IdentityResolver, FakeAccount],
) -> None:
    resolver, alice = resolver_and_alice
    key = (await resolver.resolve_did(alice.did)).signing_key
    assert key is not None
    first = await verify_commit(alice.genesis, None, HOST, resolver)
    assert first.accepted
    good = alice.commit({f"{POST}/a": post("fine")})
    forged = alice.commit({f"{POST}/b": post("forged")}, key=generate_k256(), advance=False)
    verifier = Verifier(1)
    try:
        good_check, forged_check = verifier.check(good, key), verifier.check(forged, key)
        assert good_check is not None and forged_check is not None
        checked_good, checked_forged = await good_check, await forged_check
    finally:
        await verifier.close()
    assert checked_good.signed_by == (key.curve, key.compressed())
    assert checked_forged.signed_by is None and checked_forged.problem is None

    accepted = await verify_commit(good, first.state, HOST, resolver, check=checked_good)
    assert accepted.accepted and accepted.state.rev == good.rev
    inline = await verify_commit(forged, accepted.state, HOST, resolver)
    pooled = await verify_commit(forged, accepted.state, HOST, resolver, check=checked_forged)
    assert inline.reason == pooled.reason == Reason.BAD_SIGNATURE


def junk(n: int) -> CommitEvent:
    """A #commit whose CAR does not parse: check_commit says so (it never raises)."""
    return CommitEvent(
        n,
        "did:plc:abcdefghijklmnopqrstuvwx",
        cid_for_cbor(b"\xa0"),
        "3l2uygzaf5c2b",
        None,
        b"not a car %d" % n,
        (),
        "",
    )


def children() -> set[int]:
    """Process ids of this process's children, from /proc."""
    found: set[int] = set()
    for task in Path("/proc/self/task").iterdir():
        found.update(map(int, (task / "children").read_text().split()))
    return found


async def two_started(verifier: Verifier) -> list[int]:
    """One check for each of two workers (the idlest gets the next batch), so both have
    started; their process ids, which are this process's children."""
    started = [verifier.check(junk(i), None) for i in range(2)]
    await asyncio.wait_for(asyncio.gather(*started), HANG)  # type: ignore[arg-type]
    pids = verifier.pids()
    assert len(pids) == 2 and set(pids) <= children()
    return pids


async def test_workers_run_below_the_serving_process() -> None:
    verifier = Verifier(2)
    try:
        pids = await two_started(verifier)
        mine = os.getpriority(os.PRIO_PROCESS, 0)
        wanted = min(mine + WORKER_NICENESS, 19)
        assert {os.getpriority(os.PRIO_PROCESS, pid) for pid in pids} == {wanted}
    finally:
        await verifier.close()


async def test_no_workers_checks_inline() -> None:
    verifier = Verifier(0)
    assert verifier.check(None, None) is None  # type: ignore[arg-type]
    await verifier.close()


@pytest.mark.parametrize("prev_data", [cid_for_cbor(b"\xa1adb"), None])
def test_wire_form_keeps_what_check_commit_reads(prev_data: object) -> None:
    """Workers get a #commit as plain values: everything check_commit reads survives the
    pickle round trip; seq, time and blobs (which it never reads) are dropped."""
    a, b = cid_for_cbor(b"\xa1aab"), cid_for_cbor(b"\xa1abb")
    event = CommitEvent(
        seq=7,
        repo="did:plc:abcdefghijklmnopqrstuvwx",
        commit=cid_for_cbor(b"\xa1acb"),
        rev="3l2uygzaf5c2b",
        since="3l2uygzaf5c2a",
        blocks=b"car bytes",
        ops=(
            RepoOp("create", f"{POST}/a", a),
            RepoOp("update", f"{POST}/b", b, a),
            RepoOp("delete", f"{POST}/c", None, b),
        ),
        time="2024-05-01T12:00:00.000Z",
        blobs=(a,),
        prev_data=prev_data,  # type: ignore[arg-type]
    )
    back = commit_from_wire(pickle.loads(pickle.dumps(commit_to_wire(event), 5)))
    assert back == dataclasses.replace(event, seq=0, time="", blobs=())


def test_checks_survive_the_pipe() -> None:
    """CommitCheck pickles as plain values and comes back equal, with or without a commit."""
    key = generate_k256()
    commit = Commit(
        Did("did:plc:abcdefghijklmnopqrstuvwx"),
        cid_for_cbor(b"\xa1aab"),
        Tid("3l2uygzaf5c2b"),
        b"s" * 64,
        cid_for_cbor(b"\xa1abb"),
    )
    checks = [
        CommitCheck(commit, None, (key.public_key().curve, key.public_key().compressed())),
        CommitCheck(
            dataclasses.replace(commit, prev=None), inversion=(Reason.INVERSION_FAILED, "x")
        ),
        CommitCheck(problem=(Reason.BAD_CAR, "not a CAR")),
    ]
    assert pickle.loads(pickle.dumps(checks, 5)) == checks


def many_commits(alice: FakeAccount, n: int) -> list[CommitEvent]:
    """`n` commits of alice in a row: every 5th signed with another key and every 7th with its
    CAR cut short (neither moves the repo on), the others good."""
    other = generate_k256()
    events = []
    for i in range(n):
        if i % 5 == 4:
            events.append(alice.commit({f"{POST}/f{i}": post("forged")}, key=other, advance=False))
        elif i % 7 == 6:
            cut = alice.commit({f"{POST}/c{i}": post("cut")}, advance=False)
            events.append(dataclasses.replace(cut, blocks=cut.blocks[:-10]))
        else:
            events.append(alice.commit({f"{POST}/p{i}": post(f"post {i}")}))
    return events


async def key_and_commits(
    resolver_and_alice: tuple[IdentityResolver, FakeAccount], n: int
) -> tuple[PublicKey, list[CommitEvent]]:
    """Alice's signing key as the resolver finds it, and many_commits(alice, n)."""
    resolver, alice = resolver_and_alice
    key = (await resolver.resolve_did(alice.did)).signing_key
    assert key is not None
    return key, many_commits(alice, n)


@pytest.mark.slow
async def test_many_checks_on_two_workers_match_inline_checks(
    resolver_and_alice: tuple[IdentityResolver, FakeAccount],
) -> None:
    key, events = await key_and_commits(resolver_and_alice, 5 * BATCH)
    keys = [key if i % 3 else None for i in range(len(events))]
    verifier = Verifier(2)
    try:
        futures = [verifier.check(event, k) for event, k in zip(events, keys, strict=True)]
        assert len(verifier.pids()) == 2
        pooled = await asyncio.wait_for(asyncio.gather(*futures), HANG)  # type: ignore[arg-type]
    finally:
        await verifier.close()
    inline = [check_commit(event, k) for event, k in zip(events, keys, strict=True)]
    assert pooled == inline
    assert sum(c.signed_by is not None for c in pooled) > BATCH
    assert sum(c.problem is not None for c in pooled) > 10
    assert sum(c.problem is None and c.signed_by is None for c in pooled) > 2 * BATCH


@pytest.mark.slow
async def test_a_killed_worker_fails_its_checks_and_a_new_one_takes_over(
    resolver_and_alice: tuple[IdentityResolver, FakeAccount],
) -> None:
    key, events = await key_and_commits(resolver_and_alice, 3 * BATCH)
    inline = [check_commit(event, key) for event in events]
    verifier = Verifier(2)
    try:
        # Both workers answer once (a worker that never answered is replaced only later).
        warm = [verifier.check(event, key) for event in events[:4]]
        assert await asyncio.wait_for(asyncio.gather(*warm), HANG) == inline[:4]  # type: ignore[arg-type]
        victim, survivor = verifier.pids()
        # Stopped, the victim holds its batches unanswered until the SIGKILL.
        os.kill(victim, signal.SIGSTOP)
        futures = [verifier.check(event, key) for event in events]
        os.kill(victim, signal.SIGKILL)
        outcomes = await asyncio.wait_for(
            asyncio.gather(*futures, return_exceptions=True),  # type: ignore[arg-type]
            HANG,
        )
        failed = [i for i, outcome in enumerate(outcomes) if isinstance(outcome, WorkerFailed)]
        assert failed and len(failed) < len(events)
        assert all(
            outcome == want
            for outcome, want in zip(outcomes, inline, strict=True)
            if not isinstance(outcome, WorkerFailed)
        )
        pids = verifier.pids()
        assert len(pids) == 2 and survivor in pids and victim not in pids
        assert victim not in children()
        later = [verifier.check(event, key) for event in events]
        assert await asyncio.wait_for(asyncio.gather(*later), HANG) == inline  # type: ignore[arg-type]
    finally:
        await verifier.close()


async def test_close_stops_every_worker_and_cancels_every_check() -> None:
    verifier = Verifier(2)
    try:
        pids = await two_started(verifier)
        pending = [verifier.check(junk(i), None) for i in range(500)]
    finally:
        await verifier.close()
    assert not set(pids) & children()
    assert all(done is not None and done.cancelled() for done in pending)
    assert verifier.pids() == [] and verifier.check(junk(0), None) is None


async def test_commits_whose_worker_dies_are_checked_inline(
    relay: Relay, upstream: Upstream
) -> None:
    verifier = relay.ctx.ingest.verifier
    assert verifier is not None and verifier.workers == 2
    alice = await upstream.account("alice.test")
    await upstream.pds.emit(alice.genesis)
    crawled = await relay.client.post(
        "/xrpc/com.atproto.sync.requestCrawl", json={"hostname": upstream.hostname}
    )
    assert crawled.status_code == 200

    async def head_is(seq: int) -> bool:
        return relay.ctx.writer.head == seq

    await wait_until(partial(head_is, 1))
    pids = verifier.pids()
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        await upstream.pds.emit(alice.commit({f"{POST}/a": post("after the crash")}))

        async def received() -> bool:
            return relay.ctx.metrics.value(RECEIVED, kind="commit") == 2

        await wait_until(received)  # its check went to a stopped worker
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
    await wait_until(partial(head_is, 2))
    assert relay.ctx.metrics.by_label(REJECTED, "reason") == {}

    async def replaced() -> bool:
        # A killed worker with nothing in flight is noticed when its socket closes, which may
        # come after the commit that the other one's death sent inline.
        return not set(pids) & set(verifier.pids())

    await wait_until(replaced)


@pytest.mark.slow
async def test_a_new_accounts_commits_are_checked_with_its_key_once_known(
    resolver_and_alice: tuple[IdentityResolver, FakeAccount], tmp_path: Path
) -> None:
    """Commits of an account never seen, read before its #identity is applied, are not sent
    keyless (their signatures would then be verified inline): they start, with the key, once
    the #identity in front of them brought it; the relay then emits all of them."""
    resolver, alice = resolver_and_alice
    db = Database(tmp_path / "relay.sqlite")
    await db.open()
    writer = Writer(db, replay_window=60.0, metrics=Metrics())
    await writer.start()
    verifier = Verifier(1)
    ingest = Ingest(db, writer, resolver, Metrics(), verifier=verifier)
    try:
        host = await writer.run(hosts.create, "pds.example.com", "active", False, 100)
        identity = IdentityEvent(1, alice.did, "2025-01-01T00:00:00.000Z", "alice.test")
        genesis = dataclasses.replace(alice.genesis, seq=2)
        later = dataclasses.replace(alice.commit({f"{POST}/a": post("hi")}), seq=3)
        position = HostCursor(host.id, 0, (), 10)
        prepared = [ingest.prepare(event, host) for event in (identity, genesis, later)]
        assert [p.check for p in prepared] == [None, None, None]  # no key yet: none started
        for seq in (1, 2, 3):
            position.begin(seq)
        await ingest.apply(host, prepared[0], position)
        ingest.start_checks(identity, prepared[1:])  # what the lane does after each event
        checks = [p.check for p in prepared[1:]]
        assert all(check is not None for check in checks)
        key = (await resolver.resolve_did(alice.did)).signing_key
        assert key is not None
        for check in checks:
            assert check is not None
            assert (await asyncio.wait_for(check, HANG)).signed_by == (key.curve, key.compressed())
        for each in prepared[1:]:
            done = await ingest.apply(host, each, position)
            assert done is not None and await done is not None  # emitted
    finally:
        await verifier.close()
        await writer.close()
        await db.close()

"""relay.verifier: commit checks in a worker process give the verdicts of inline checks."""

from __future__ import annotations

import dataclasses
import os
import pickle
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from atcore.cid import cid_for_cbor
from atcore.commit import Commit
from atcore.frames import CommitEvent, RepoOp
from atcore.identity.plc_client import PlcClient
from atcore.identity.resolver import IdentityResolver
from atcore.keys import generate_k256
from atcore.syntax.did import Did
from atcore.syntax.tid import Tid
from relay.repostate import Reason
from relay.validate import CommitCheck, verify_commit
from relay.verifier import WORKER_NICENESS, Verifier, from_wire, to_wire
from tests.relay.fake_pds import PLC_URL, FakeAccount, in_process_plc, post

HOST = "https://pds.example.com"
POST = "app.bsky.feed.post"


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
        verifier.close()
    assert checked_good.signed_by == (key.curve, key.compressed())
    assert checked_forged.signed_by is None and checked_forged.problem is None

    accepted = await verify_commit(good, first.state, HOST, resolver, check=checked_good)
    assert accepted.accepted and accepted.state.rev == good.rev
    inline = await verify_commit(forged, accepted.state, HOST, resolver)
    pooled = await verify_commit(forged, accepted.state, HOST, resolver, check=checked_forged)
    assert inline.reason == pooled.reason == Reason.BAD_SIGNATURE


def test_workers_run_below_the_serving_process() -> None:
    verifier = Verifier(2)
    try:
        assert verifier._pool is not None
        pids = [verifier._pool.submit(os.getpid).result() for _ in range(4)]
        mine = os.getpriority(os.PRIO_PROCESS, 0)
        wanted = min(mine + WORKER_NICENESS, 19)
        assert {os.getpriority(os.PRIO_PROCESS, pid) for pid in pids} == {wanted}
    finally:
        verifier.close()


async def test_no_workers_checks_inline() -> None:
    verifier = Verifier(0)
    assert verifier.check(None, None) is None  # type: ignore[arg-type]
    verifier.close()


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
    back = from_wire(pickle.loads(pickle.dumps(to_wire(event), 5)))
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

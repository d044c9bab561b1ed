"""relay.validate against real sync 1.1 events built with atcore and DIDs at our PLC app."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import cbor2
import pytest

from atcore import cbor
from atcore.car import read_car, write_car
from atcore.cid import cid_for_cbor
from atcore.frames import AccountEvent, CommitEvent, IdentityEvent, RepoOp
from atcore.identity.plc_client import PlcClient
from atcore.identity.resolver import IdentityResolver
from atcore.keys import PrivateKey, generate_k256
from atcore.syntax.tid import tid_from_timestamp
from relay.repostate import ACTIVE, DESYNCHRONIZED, Reason, RepoState, Verdict
from relay.validate import (
    normalize_host,
    verify_account,
    verify_commit,
    verify_identity,
    verify_sync,
)
from tests.relay.fake_pds import PLC_URL, TIME, FakeAccount, in_process_plc, post

HOST = "https://pds.example.com"
OTHER_HOST = "https://other.example.com"
UNREGISTERED = "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa"


@dataclass
class Env:
    plc: PlcClient
    resolver: IdentityResolver
    alice: FakeAccount
    state: RepoState  # alice's state after her genesis commit


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    async with in_process_plc(tmp_path) as http:
        plc = PlcClient(PLC_URL, http)
        resolver = IdentityResolver(PLC_URL, http)
        alice = await FakeAccount.create(plc, HOST, "alice.test")
        genesis = await verify_commit(alice.genesis, None, HOST, resolver)
        assert genesis.accepted, genesis.detail
        yield Env(plc, resolver, alice, genesis.state)


async def check(
    env: Env, event: CommitEvent, state: RepoState | None = None, lenient: bool = False
) -> Verdict:
    current = env.state if state is None else state
    return await verify_commit(event, current, HOST, env.resolver, lenient=lenient)


def rejected(verdict: Verdict, reason: Reason) -> None:
    assert (verdict.accepted, verdict.reason) == (False, reason), verdict.detail


async def test_genesis_then_chain_of_commits(env: Env) -> None:
    alice, state = env.alice, env.state
    assert (state.rev, state.head, state.data, state.status) == (
        alice.rev,
        alice.head.root,
        alice.head.data,
        ACTIVE,
    )
    paths = [f"app.bsky.feed.post/3k{n:011d}" for n in range(3)]
    batches: list[dict[str, dict[str, object] | None]] = [
        {p: post(p) for p in paths},
        {paths[0]: post("edited")},
        {paths[1]: None, "app.bsky.actor.profile/self": {"$type": "app.bsky.actor.profile"}},
        {paths[0]: None, paths[2]: None},
    ]
    for writes in batches:
        verdict = await check(env, alice.commit(writes), state)
        assert verdict.accepted and not verdict.lenient, verdict.detail
        state = verdict.state
        assert (state.rev, state.head, state.data) == (alice.rev, alice.head.root, alice.head.data)


@pytest.mark.parametrize("host", ["pds.example.com", "https://PDS.example.com:443/", HOST])
async def test_host_forms_match(env: Env, host: str) -> None:
    event = env.alice.commit({"app.bsky.feed.post/3kaaaaaaaaaaa": post("x")})
    assert (await verify_commit(event, env.state, host, env.resolver)).accepted
    assert normalize_host("http://localhost:2583") == "localhost:2583"
    assert normalize_host("http://localhost:80") == "localhost"


def _one(
    env: Env, key: PrivateKey | None = None, rev: str | None = None, did: str | None = None
) -> CommitEvent:
    """A one-create commit, not applied to alice's repo (so variants can be built freely)."""
    writes: dict[str, dict[str, object] | bytes | None] = {
        "app.bsky.feed.post/3kbbbbbbbbbbb": post("hi")
    }
    return env.alice.commit(writes, advance=False, key=key, rev=rev, did=did)


async def test_bad_event_fields(env: Env) -> None:
    event = _one(env)
    op = event.ops[0]
    for bad in (
        replace(event, repo="not a did"),
        replace(event, rev="3k-not-a-tid"),
        replace(event, since="nope"),
        replace(event, ops=(replace(op, action="frobnicate"),)),
        replace(event, ops=(replace(op, path="no-slash"),)),
        replace(event, ops=(replace(op, prev=op.cid),)),  # a create with a previous version
        replace(event, ops=(replace(op, action="delete"),)),  # a delete with a new version
    ):
        rejected(await check(env, bad), Reason.BAD_EVENT)


async def test_too_big(env: Env) -> None:
    event = _one(env)
    rejected(await check(env, replace(event, ops=tuple(event.ops) * 201)), Reason.TOO_BIG)
    rejected(await check(env, replace(event, blocks=b"\0" * 2_000_001)), Reason.TOO_BIG)
    car = read_car(event.blocks)
    huge = {"$type": "app.bsky.feed.post", "text": "x" * 1_000_001}
    big = write_car(event.commit, [*car.blocks.items(), (cid_for_cbor(_enc(huge)), _enc(huge))])
    rejected(await check(env, replace(event, blocks=big)), Reason.TOO_BIG)


def _enc(value: object) -> bytes:
    return cbor.encode(value)


async def test_bad_car(env: Env) -> None:
    event = _one(env)
    for blocks in (b"", b"\x05hello", event.blocks[:-1], event.blocks + b"\x00"):
        rejected(await check(env, replace(event, blocks=blocks)), Reason.BAD_CAR)


async def test_root_not_commit_and_bad_commit(env: Env) -> None:
    event = _one(env)
    record = event.ops[0].cid
    assert record is not None
    rejected(await check(env, replace(event, commit=record)), Reason.ROOT_NOT_COMMIT)
    blocks = read_car(event.blocks).blocks
    # The CAR names the record as its root and the event points at it: not a commit.
    as_root = write_car(record, blocks.items())
    rejected(await check(env, replace(event, commit=record, blocks=as_root)), Reason.BAD_COMMIT)
    without = write_car(event.commit, [(c, b) for c, b in blocks.items() if c != event.commit])
    rejected(await check(env, replace(event, blocks=without)), Reason.ROOT_NOT_COMMIT)


async def test_non_canonical_commit_block_is_diagnosed(env: Env) -> None:
    """The rejection says what is not canonical in a peer's commit block, and where."""
    event = _one(env)
    blocks = read_car(event.blocks).blocks
    fields = cbor2.loads(blocks[event.commit])
    sloppy = cbor2.dumps(dict(reversed(fields.items())))  # keys in reverse canonical order
    commit = cid_for_cbor(sloppy)
    others = [(c, b) for c, b in blocks.items() if c != event.commit]
    car = write_car(commit, [(commit, sloppy), *others])
    verdict = await check(env, replace(event, commit=commit, blocks=car))
    rejected(verdict, Reason.BAD_COMMIT)
    assert "map keys out of canonical order at $: 'version'" in verdict.detail


async def test_did_and_rev_mismatch(env: Env) -> None:
    signed_for_other = _one(env, did=UNREGISTERED)
    rejected(await check(env, signed_for_other), Reason.DID_MISMATCH)
    event = _one(env)
    later = tid_from_timestamp(time.time_ns() // 1000 + 10_000_000, 0)
    rejected(await check(env, replace(event, rev=later)), Reason.REV_MISMATCH)


async def test_no_identity(env: Env) -> None:
    event = replace(_one(env, did=UNREGISTERED), repo=UNREGISTERED)
    rejected(await check(env, event, RepoState(UNREGISTERED)), Reason.NO_IDENTITY)


async def test_wrong_pds_and_migration(env: Env) -> None:
    event = _one(env)
    verdict = await verify_commit(event, env.state, OTHER_HOST, env.resolver)
    rejected(verdict, Reason.WRONG_PDS)
    # The account moves; the cached document still says HOST, so the first check fails and
    # the refresh finds the new PDS.
    await env.alice.update_identity(env.plc, pds=OTHER_HOST)
    assert (await verify_commit(event, env.state, OTHER_HOST, env.resolver)).accepted
    rejected(await check(env, event), Reason.WRONG_PDS)


async def test_bad_signature_and_key_rotation(env: Env) -> None:
    rejected(await check(env, _one(env, key=generate_k256())), Reason.BAD_SIGNATURE)
    new_key = generate_k256()
    await env.alice.update_identity(env.plc, key=new_key)
    # Signed with the new key while the resolver still caches the old one: refreshed, accepted.
    assert (await check(env, _one(env))).accepted


async def test_rev_ordering(env: Env) -> None:
    event = env.alice.commit({"app.bsky.feed.post/3kccccccccccc": post("a")})
    verdict = await check(env, event)
    assert verdict.accepted
    rejected(await check(env, event, verdict.state), Reason.REV_NOT_NEWER)
    rewound = tid_from_timestamp(time.time_ns() // 1000 - 3_600_000_000, 0)
    rejected(await check(env, _one(env, rev=rewound), verdict.state), Reason.REV_NOT_NEWER)
    future = tid_from_timestamp(time.time_ns() // 1000 + 3_600_000_000, 0)
    rejected(await check(env, _one(env, rev=future), verdict.state), Reason.REV_IN_FUTURE)
    soon = tid_from_timestamp(time.time_ns() // 1000 + 60_000_000, 0)  # within clock drift
    assert (await check(env, _one(env, rev=soon), verdict.state)).accepted


async def test_since_gap_desynchronizes(env: Env) -> None:
    alice = env.alice
    alice.commit({"app.bsky.feed.post/3kddddddddddd": post("missed")})
    after_gap = alice.commit({"app.bsky.feed.post/3keeeeeeeeeee": post("next")})
    verdict = await check(env, after_gap)
    rejected(verdict, Reason.SINCE_MISMATCH)
    assert verdict.desynchronized and verdict.state.rev == env.state.rev
    following = alice.commit({"app.bsky.feed.post/3kfffffffffff": post("more")})
    rejected(await check(env, following, verdict.state), Reason.DESYNCHRONIZED)


async def test_forged_chain_break_does_not_desynchronize(env: Env) -> None:
    forged = replace(_one(env, key=generate_k256()), since="3kaaaaaaaaaaa")
    verdict = await check(env, forged)
    rejected(verdict, Reason.BAD_SIGNATURE)
    assert verdict.state.status == ACTIVE


async def test_prev_data_mismatch_desynchronizes(env: Env) -> None:
    event = _one(env)
    verdict = await check(env, replace(event, prev_data=event.commit))
    rejected(verdict, Reason.PREV_DATA_MISMATCH)
    assert verdict.state.status == DESYNCHRONIZED


async def test_missing_prev_data_strict_and_lenient(env: Env) -> None:
    legacy = replace(_one(env), prev_data=None)
    rejected(await check(env, legacy), Reason.MISSING_PREV_DATA)
    verdict = await check(env, legacy, lenient=True)
    assert verdict.accepted and verdict.lenient
    first = env.alice.commit({"app.bsky.feed.post/3kggggggggggg": post("v1")})
    state = (await check(env, first)).state
    update = env.alice.commit({"app.bsky.feed.post/3kggggggggggg": post("v2")}, advance=False)
    no_prev = replace(update, ops=(replace(update.ops[0], prev=None),))
    rejected(await check(env, no_prev, state), Reason.INVERSION_FAILED)
    assert (await check(env, no_prev, state, lenient=True)).lenient


async def test_ops_that_do_not_invert(env: Env) -> None:
    alice = env.alice
    two = alice.commit(
        {
            "app.bsky.feed.post/3khhhhhhhhhhh": post("1"),
            "app.bsky.feed.post/3kiiiiiiiiiii": post("2"),
        },
        advance=False,
    )
    rejected(await check(env, replace(two, ops=two.ops[:1])), Reason.INVERSION_FAILED)
    swapped = RepoOp("create", two.ops[0].path, two.ops[1].cid)
    rejected(await check(env, replace(two, ops=(swapped, two.ops[1]))), Reason.INVERSION_FAILED)
    # Enough posts for a multi-level tree, so a commit without its proof blocks cannot invert.
    for n in range(3):
        batch = {f"app.bsky.feed.post/3k{n:02d}{m:09d}": post(str(m)) for m in range(60)}
        env.state = (await check(env, alice.commit(batch))).state
    # Undoing a delete re-inserts the key, which reads the untouched neighbouring subtrees:
    # find a delete whose event is smaller without its proof blocks.
    for m in range(60):
        writes: dict[str, dict[str, object] | bytes | None] = {
            f"app.bsky.feed.post/3k02{m:09d}": None
        }
        no_proof = alice.commit(writes, advance=False, proof=False)
        if len(no_proof.blocks) < len(alice.commit(writes, advance=False).blocks):
            break
    else:
        raise AssertionError("no delete needs proof blocks")
    rejected(await check(env, no_proof), Reason.INVERSION_FAILED)


async def test_missing_and_bad_record_blocks(env: Env) -> None:
    event = _one(env)
    record = event.ops[0].cid
    blocks = read_car(event.blocks).blocks
    without = write_car(event.commit, [(c, b) for c, b in blocks.items() if c != record])
    rejected(await check(env, replace(event, blocks=without)), Reason.MISSING_BLOCK)
    not_a_map = env.alice.commit(
        {"app.bsky.feed.post/3kjjjjjjjjjjj": b"\x82\x01\x02"}, advance=False
    )
    rejected(await check(env, not_a_map), Reason.BAD_RECORD)


async def test_account_status_converges(env: Env) -> None:
    did = env.alice.did
    off = await verify_account(
        AccountEvent(1, did, TIME, False, "deactivated"), env.state, HOST, env.resolver
    )
    assert off.accepted and off.state.status == "deactivated"
    rejected(await check(env, _one(env), off.state), Reason.INACTIVE)
    rejected(
        await verify_account(AccountEvent(2, did, TIME, True), off.state, OTHER_HOST, env.resolver),
        Reason.WRONG_PDS,
    )
    on = await verify_account(AccountEvent(2, did, TIME, True), off.state, HOST, env.resolver)
    assert on.accepted and on.state.status == ACTIVE
    assert (await check(env, _one(env), on.state)).accepted
    odd = await verify_account(
        AccountEvent(3, did, TIME, False, "active"), on.state, HOST, env.resolver
    )
    assert odd.state.status == "deactivated"
    desync = replace(env.state, status=DESYNCHRONIZED)
    kept = await verify_account(AccountEvent(4, did, TIME, True), desync, HOST, env.resolver)
    assert kept.state.status == DESYNCHRONIZED


async def test_identity_event_refreshes(env: Env) -> None:
    did = env.alice.did
    await env.alice.update_identity(env.plc, pds=OTHER_HOST)
    rejected(
        await verify_identity(IdentityEvent(1, did, TIME), env.state, HOST, env.resolver),
        Reason.WRONG_PDS,
    )
    assert (
        await verify_identity(IdentityEvent(2, did, TIME), env.state, OTHER_HOST, env.resolver)
    ).accepted
    event = _one(env)
    assert (await verify_commit(event, env.state, OTHER_HOST, env.resolver)).accepted


async def test_sync_event(env: Env) -> None:
    alice = env.alice
    alice.commit({"app.bsky.feed.post/3kkkkkkkkkkkk": post("unseen")})
    desync = replace(env.state, status=DESYNCHRONIZED)
    verdict = await verify_sync(alice.sync_event(), desync, HOST, env.resolver)
    assert verdict.accepted
    assert verdict.state == RepoState(
        alice.did, alice.rev, alice.head.data, alice.head.root, ACTIVE
    )
    # The same commit again matches what we hold: ignored (spec-sync.md), not rejected.
    repeated = await verify_sync(alice.sync_event(), verdict.state, HOST, env.resolver)
    assert repeated == Verdict(False, verdict.state, ignored=True)
    # The same rev under another commit is no repeat: a stale or forged head.
    rejected(
        await verify_sync(alice.sync_event(generate_k256()), verdict.state, HOST, env.resolver),
        Reason.REV_NOT_NEWER,
    )
    rejected(
        await verify_sync(alice.sync_event(generate_k256()), env.state, HOST, env.resolver),
        Reason.BAD_SIGNATURE,
    )
    rejected(
        await verify_sync(alice.sync_event(), env.state, OTHER_HOST, env.resolver), Reason.WRONG_PDS
    )
    garbage = replace(alice.sync_event(), blocks=b"\x01" * 20_000)
    rejected(await verify_sync(garbage, env.state, HOST, env.resolver), Reason.TOO_BIG)

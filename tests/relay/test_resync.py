"""relay.resync against the fake PDS: full verification of getRepo exports, good and hostile."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from atcore.car import CarLimits, read_car, write_car
from atcore.frames import CommitEvent
from atcore.identity.netguard import AddressGuard
from atcore.identity.pinned import guarded_client
from atcore.identity.plc_client import PlcClient
from atcore.identity.resolver import IdentityResolver
from atcore.keys import generate_k256
from atcore.mst import walk
from atcore.xrpc.stream import subscribe
from relay.repostate import ACTIVE, DESYNCHRONIZED, Reason, Rejected, RepoState
from relay.resync import RESYNC_LIMITS, resync_repo
from relay.validate import verify_commit, verify_sync
from tests.relay.fake_pds import (
    PLC_URL,
    FakeAccount,
    FakePds,
    in_process_plc,
    post,
    serve_fake_pds,
)

PDS_URL = "http://pds.test"


@dataclass
class Env:
    plc: PlcClient
    resolver: IdentityResolver
    pds: FakePds
    http: httpx.AsyncClient  # reaches the fake PDS in-process
    alice: FakeAccount


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    async with in_process_plc(tmp_path) as plc_http:
        plc = PlcClient(PLC_URL, plc_http)
        resolver = IdentityResolver(PLC_URL, plc_http)
        pds = FakePds()
        alice = pds.add(await FakeAccount.create(plc, PDS_URL, "alice.test"))
        for n in range(3):
            alice.commit({f"app.bsky.feed.post/3k{n}{m:010d}": post(str(m)) for m in range(40)})
        alice.commit({"app.bsky.actor.profile/self": {"$type": "app.bsky.actor.profile"}})
        transport = httpx.ASGITransport(app=pds.app)
        async with httpx.AsyncClient(transport=transport) as http:
            yield Env(plc, resolver, pds, http, alice)


async def resync(
    env: Env, state: RepoState | None = None, limits: CarLimits = RESYNC_LIMITS
) -> Reason | None:
    """The rejection reason of a dev-mode resync of alice, or None if it succeeded."""
    try:
        await resync_repo(env.alice.did, state, env.resolver, env.http, limits=limits)
    except Rejected as exc:
        return exc.reason
    return None


async def test_resync_verifies_and_emits_sync(env: Env) -> None:
    alice = env.alice
    stale = RepoState(alice.did, "2222222222222", None, None, DESYNCHRONIZED)
    done = await resync_repo(alice.did, stale, env.resolver, env.http)
    assert done.state == RepoState(alice.did, alice.rev, alice.head.data, alice.head.root, ACTIVE)
    assert done.records == 121
    assert done.collections == {"app.bsky.feed.post", "app.bsky.actor.profile"}
    # The #sync it emits is one our own checks accept, and commits then chain from it.
    verdict = await verify_sync(done.event, stale, PDS_URL, env.resolver)
    assert verdict.accepted and verdict.state == done.state
    event = alice.commit({"app.bsky.feed.post/3kzzzzzzzzzzz": post("after")})
    assert (await verify_commit(event, done.state, PDS_URL, env.resolver)).accepted


def _without(car: bytes, drop: object) -> bytes:
    parsed = read_car(car)
    return write_car(parsed.root, [(c, b) for c, b in parsed.blocks.items() if c != drop])


async def test_hostile_exports(env: Env) -> None:
    alice, overrides = env.alice, env.pds.repo_overrides
    full = alice.repo_car()
    record = next(walk.walk(alice.store, alice.head.data))[1]
    leaf = list(walk.iter_nodes(alice.store, alice.head.data))[-1]
    bob_pds = FakePds()
    bob = bob_pds.add(await FakeAccount.create(env.plc, PDS_URL, "bob.test"))
    cases: list[tuple[bytes | int, Reason]] = [
        (bob.repo_car(), Reason.DID_MISMATCH),
        (_without(full, record), Reason.MISSING_BLOCK),
        (_without(full, leaf), Reason.MISSING_BLOCK),
        (_without(full, alice.head.root), Reason.ROOT_NOT_COMMIT),
        (full[:-10], Reason.BAD_CAR),
        (b"garbage", Reason.BAD_CAR),
        (500, Reason.RESYNC_FAILED),
    ]
    for body, reason in cases:
        overrides[alice.did] = body
        assert await resync(env) == reason, reason
    overrides.clear()
    assert await resync(env, limits=CarLimits(max_blocks=50)) == Reason.BAD_CAR
    assert await resync(env, limits=CarLimits(max_total_size=2000)) == Reason.BAD_CAR
    # A repo older than what the relay already verified would roll the account back.
    ahead = RepoState(alice.did, "3zzzzzzzzzzzz")
    assert await resync(env, ahead) == Reason.REV_NOT_NEWER


async def test_forged_export_signature(env: Env) -> None:
    alice = env.alice
    await alice.update_identity(env.plc, key=generate_k256())
    # The PDS still serves the repo signed with the old key; the DID now names a new one.
    assert await resync(env) == Reason.BAD_SIGNATURE


async def test_private_pds_refused_outside_dev_mode(env: Env) -> None:
    for pds in ("http://127.0.0.1:9", "http://localhost:9"):
        await env.alice.update_identity(env.plc, pds=pds)
        env.resolver.invalidate(env.alice.did)
        async with guarded_client(AddressGuard()) as guarded:
            with pytest.raises(Rejected) as refused:
                await resync_repo(env.alice.did, None, env.resolver, guarded)
        assert refused.value.reason == Reason.RESYNC_FAILED
        assert "UnsafeAddress" in refused.value.detail
    assert env.pds.getrepo_calls == 0


@pytest.mark.integration
async def test_live_fake_pds(tmp_path: Path) -> None:
    """The helper served for real: its firehose carries what a test queues, getRepo serves."""
    pds = FakePds()
    async with in_process_plc(tmp_path) as plc_http, serve_fake_pds(pds) as url:
        plc = PlcClient(PLC_URL, plc_http)
        resolver = IdentityResolver(PLC_URL, plc_http)
        alice = pds.add(await FakeAccount.create(plc, url, "alice.test"))
        good = alice.commit({"app.bsky.feed.post/3kaaaaaaaaaaa": post("one")})
        forged = alice.commit(
            {"app.bsky.feed.post/3kbbbbbbbbbbb": post("x")}, key=generate_k256(), advance=False
        )
        assert await pds.emit(alice.genesis) == 1
        await pds.emit(good)
        await pds.emit(forged)
        await pds.close_streams()
        state: RepoState | None = None
        reasons = []
        async for event in subscribe(f"{url}/xrpc/com.atproto.sync.subscribeRepos"):
            assert isinstance(event, CommitEvent)
            verdict = await verify_commit(event, state, url, resolver)
            reasons.append(verdict.reason)
            state = verdict.state
        assert reasons == [None, None, Reason.BAD_SIGNATURE]
        async with guarded_client(AddressGuard(allow_private=True)) as http:
            done = await resync_repo(alice.did, state, resolver, http)
        assert done.state == state and done.records == 1

"""atcore.firehose_verify: what is checked of a relay's #commit, with and without trusting it."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from atcore.cid import cid_for_cbor
from atcore.firehose_verify import Unverified, check_sync, commit_blocks
from atcore.frames import CommitEvent
from atcore.identity.plc_client import PlcClient
from atcore.identity.resolver import IdentityResolver
from atcore.keys import generate_k256
from tests.relay.fake_pds import PLC_URL, FakeAccount, in_process_plc, post

HOST = "http://pds.test"


@pytest.fixture
async def alice(tmp_path: Path) -> AsyncIterator[tuple[FakeAccount, IdentityResolver]]:
    async with in_process_plc(tmp_path) as http:
        account = await FakeAccount.create(PlcClient(PLC_URL, http), HOST, "alice.test")
        yield account, IdentityResolver(PLC_URL, http)


async def test_a_good_commit_passes_and_carries_its_records(
    alice: tuple[FakeAccount, IdentityResolver],
) -> None:
    account, resolver = alice
    event = account.commit(
        {"app.bsky.feed.post/3l1": post("a"), "app.bsky.feed.post/3l2": post("b")}
    )
    blocks = await commit_blocks(event, resolver)
    assert all(op.cid is not None and blocks.has(op.cid) for op in event.ops)
    delete = account.commit({"app.bsky.feed.post/3l1": None})
    await commit_blocks(delete, resolver)


async def test_a_forged_signature_is_refused_unless_the_relay_is_trusted(
    alice: tuple[FakeAccount, IdentityResolver],
) -> None:
    account, resolver = alice
    forged = account.commit({"app.bsky.feed.post/3l1": post("x")}, key=generate_k256())
    with pytest.raises(Unverified, match="signature"):
        await commit_blocks(forged, resolver)
    await commit_blocks(forged, None)


async def test_a_commit_without_its_proof_is_refused_unless_trusted(
    alice: tuple[FakeAccount, IdentityResolver],
) -> None:
    account, resolver = alice
    for n in range(3):  # a multi-level tree
        account.commit({f"app.bsky.feed.post/3k{n:02d}{m:09d}": post(str(m)) for m in range(60)})
    # Undoing a delete reads the neighbouring subtrees: find one that needs proof blocks.
    for m in range(60):
        writes: dict[str, dict[str, object] | bytes | None] = {
            f"app.bsky.feed.post/3k02{m:09d}": None
        }
        event = account.commit(writes, advance=False, proof=False)
        if len(event.blocks) < len(account.commit(writes, advance=False).blocks):
            break
    else:
        raise AssertionError("no delete needs proof blocks")
    with pytest.raises(Unverified, match="signed tree"):
        await commit_blocks(event, resolver)
    await commit_blocks(event, None)


async def test_ops_that_lie_about_the_tree_are_refused(
    alice: tuple[FakeAccount, IdentityResolver],
) -> None:
    account, resolver = alice
    event = account.commit({"app.bsky.feed.post/3l1": post("a")})
    other = cid_for_cbor(b"\xa1aa\x01")
    lying = dataclasses.replace(event, ops=(dataclasses.replace(event.ops[0], cid=other),))
    with pytest.raises(Unverified):
        await commit_blocks(lying, resolver)


@pytest.mark.parametrize("trusted", [False, True])
async def test_what_is_checked_even_when_trusting_the_relay(
    alice: tuple[FakeAccount, IdentityResolver], trusted: bool
) -> None:
    account, resolver = alice
    check = None if trusted else resolver
    event = account.commit({"app.bsky.feed.post/3l1": post("a")})
    record = event.ops[0].cid
    assert record is not None
    assert (await commit_blocks(event, check)).get(record)
    missing = dataclasses.replace(
        event, ops=(dataclasses.replace(event.ops[0], cid=cid_for_cbor(b"\xa1aa\x01")),)
    )
    bad: list[CommitEvent] = [
        dataclasses.replace(event, blocks=event.blocks[:-3]),
        dataclasses.replace(event, ops=event.ops * 201),
        missing,
    ]
    for forged in bad:
        with pytest.raises(Unverified):
            await commit_blocks(forged, check)


async def test_what_only_a_verifying_consumer_checks(
    alice: tuple[FakeAccount, IdentityResolver],
) -> None:
    """The commit block against the event and the blocks' hashes: a trusted relay checked
    them, so trusting it skips them (most of the cost of an event)."""
    account, resolver = alice
    event = account.commit({"app.bsky.feed.post/3l1": post("a")})
    bad: list[CommitEvent] = [
        dataclasses.replace(event, repo="did:plc:" + "z" * 24),
        dataclasses.replace(event, rev="3zzzzzzzzzzzz"),
        dataclasses.replace(event, commit=cid_for_cbor(b"\xa0")),
        dataclasses.replace(event, blocks=_flip_last_byte(event.blocks)),
    ]
    for forged in bad:
        with pytest.raises(Unverified):
            await commit_blocks(forged, resolver)
        await commit_blocks(forged, None)


def _flip_last_byte(car: bytes) -> bytes:
    """The CAR with its last block's last byte changed: framing intact, one hash wrong."""
    return car[:-1] + bytes([car[-1] ^ 1])


async def test_a_sync_is_checked_like_a_commit_block(
    alice: tuple[FakeAccount, IdentityResolver],
) -> None:
    account, resolver = alice
    await check_sync(account.sync_event(), resolver)
    forged = account.sync_event(key=generate_k256())
    with pytest.raises(Unverified, match="signature"):
        await check_sync(forged, resolver)
    await check_sync(forged, None)
    with pytest.raises(Unverified):
        await check_sync(dataclasses.replace(account.sync_event(), rev="3zzzzzzzzzzzz"), None)

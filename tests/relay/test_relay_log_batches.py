"""The relay log's writer merges a batch's row writes: same outcome as writing each in turn."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import pytest

from relay.db import Database, accounts, connect, hosts
from relay.db.schema import SCHEMA
from relay.hostcursor import HostCursor
from relay.metrics import Metrics
from relay.repostate import RepoState
from relay.writer import Change, Writer, _apply, _Writes
from relay.writtencache import WrittenCache

DID = "did:plc:abcdefghijklmnopqrstuvwx"
OTHER = "did:plc:bbbbbbbbbbbbbbbbbbbbbbbb"
POST, LIKE, FOLLOW = "app.bsky.feed.post", "app.bsky.feed.like", "app.bsky.graph.follow"


@pytest.fixture
async def log(tmp_path: Path) -> AsyncIterator[Writer]:
    db = Database(tmp_path / "relay.sqlite")
    await db.open()
    log = Writer(db, replay_window=3600, metrics=Metrics())
    await log.start()
    yield log
    await log.close()
    await db.close()


async def _hosts(log: Writer) -> tuple[int, int]:
    one = await log.db.write(hosts.create, "one.example.com", "active", False, 100)
    two = await log.db.write(hosts.create, "two.example.com", "active", False, 100)
    return one.id, two.id


async def _indexed(log: Writer, collection: str) -> list[str]:
    return await log.db.read(accounts.dids_with_collection, collection, "", 10)


async def test_a_batch_keeps_each_accounts_last_state_and_each_hosts_position(
    log: Writer,
) -> None:
    one, two = await _hosts(log)
    at_one, at_two = HostCursor(one, 0, (), 10), HostCursor(two, 0, (), 10)
    for seq in (3, 5, 7):
        at_one.begin(seq)
    at_two.begin(2)
    states = [RepoState(DID, rev=f"3jzfcijpj2z2{c}") for c in "abc"]
    # Queued together, these are one batch; host one's event 5 is still in flight.
    first = log.submit(Change(one, state=states[0], position=at_one, upstream_seq=3))
    log.submit(Change(one, state=states[1], position=at_one, upstream_seq=7))
    other = RepoState(OTHER, rev="3jzfcijpj2z2a")
    last = log.submit(Change(two, state=other, position=at_two, upstream_seq=2))
    await asyncio.gather(first, last)
    stored = await log.db.read(accounts.get, DID)
    assert stored is not None and stored.state == states[1]
    assert await log.db.read(hosts.position, one) == (3, [7])
    assert await log.db.read(hosts.position, two) == (2, [])
    assert (at_one.cursor, at_two.cursor) == (3, 2)
    # Event 5 finishing closes the gap: the cursor passes 7, nothing is left above it.
    await log.commit(Change(one, state=states[2], position=at_one, upstream_seq=5))
    assert await log.db.read(hosts.position, one) == (7, [])
    assert at_one.cursor == at_one.persisted == 7


async def test_a_takedown_applies_to_an_account_created_earlier_in_its_batch(
    log: Writer,
) -> None:
    one, _ = await _hosts(log)
    log.submit(Change(one, state=RepoState(DID, rev="3jzfcijpj2z2a")))
    await log.commit(Change(one, did=DID, takedown=True))
    stored = await log.db.read(accounts.get, DID)
    assert stored is not None and stored.takedown


async def test_collections_are_indexed_once_and_a_replace_drops_earlier_ones(
    log: Writer,
) -> None:
    one, _ = await _hosts(log)
    state = RepoState(DID, rev="3jzfcijpj2z2a")
    await log.commit(Change(one, state=state, collections=(POST,)))
    assert log.written.collections(DID) == {POST}
    log.submit(Change(one, state=state, collections=(POST, LIKE)))
    log.submit(Change(one, state=state, collections=(FOLLOW,), replace_collections=True))
    await log.commit(Change(one, state=state, collections=(LIKE,)))
    assert log.written.collections(DID) == {FOLLOW, LIKE}
    assert (await _indexed(log, POST), await _indexed(log, LIKE)) == ([], [DID])
    assert await _indexed(log, FOLLOW) == [DID]
    await log.commit(Change(one, state=state, collections=(POST,)))
    assert await _indexed(log, POST) == [DID]


async def test_a_failed_batch_teaches_the_collection_cache_nothing(log: Writer) -> None:
    one, _ = await _hosts(log)
    state = RepoState(DID, rev="3jzfcijpj2z2a")
    unknown_host = RepoState(OTHER, rev="3jzfcijpj2z2a")  # breaks the account's foreign key
    batch = (
        log.submit(Change(one, state=state, collections=(POST,))),
        log.submit(Change(one + 100, state=unknown_host)),
    )
    for outcome in await asyncio.gather(*batch, return_exceptions=True):
        assert isinstance(outcome, sqlite3.IntegrityError)
    assert log.written.collections(DID) == frozenset()
    assert await _indexed(log, POST) == []
    await log.commit(Change(one, state=state, collections=(POST,)))
    assert await _indexed(log, POST) == [DID]


def test_a_read_in_a_batch_sees_every_change_queued_before_it(tmp_path: Path) -> None:
    conn = connect(tmp_path / "relay.sqlite")
    conn.executescript(SCHEMA)
    one = hosts.create(conn, "one.example.com", "active", False, 100).id
    states = [RepoState(DID, rev=f"3jzfcijpj2z2{c}") for c in "ab"]
    batch = [
        Change(one, state=states[0], collections=(POST,)),
        partial(accounts.get, did=DID),
        partial(accounts.dids_with_collection, collection=POST, after="", limit=10),
        partial(hosts.get_by_id, host_id=one),
        Change(one, state=states[1], collections=(LIKE,)),
    ]
    conn.execute("BEGIN")
    # The host's position is the batch's, taken before it: a read sees it whole.
    _, account, indexed, host, _ = _apply(conn, batch, _Writes(WrittenCache(), {one: (4, [])}))
    conn.execute("COMMIT")
    assert (account.state, indexed, host.cursor) == (states[0], [DID], 4)
    assert accounts.get(conn, DID).state == states[1]  # type: ignore[union-attr]


async def test_an_account_moving_to_another_host_is_saved_with_it(log: Writer) -> None:
    one, two = await _hosts(log)
    states = [RepoState(DID, rev=f"3jzfcijpj2z2{c}") for c in "abcd"]
    await log.commit(Change(one, state=states[0]))
    await log.commit(Change(one, state=states[1]))  # known on host one: only its state
    assert log.written.host(DID) == one
    await log.commit(Change(two, state=states[2]))
    stored = await log.db.read(accounts.get, DID)
    assert stored is not None and (stored.host_id, stored.state) == (two, states[2])
    assert log.written.host(DID) == two

    def forget_row(conn: sqlite3.Connection) -> None:  # as if it were never written
        conn.execute("DELETE FROM account WHERE did = ?", (DID,))

    await log.run(forget_row)
    await log.commit(Change(two, state=states[3]))
    stored = await log.db.read(accounts.get, DID)
    assert stored is not None and (stored.host_id, stored.state) == (two, states[3])


def test_written_cache_forgets_the_oldest_dids_beyond_its_size() -> None:
    cache = WrittenCache(size=2)
    cache.indexed(DID, [POST], replaced=False)
    cache.saved(OTHER, 1)
    cache.indexed(DID, [LIKE], replaced=False)
    assert cache.collections(DID) == {POST, LIKE}
    cache.saved("did:plc:cccccccccccccccccccccccc", 1)
    assert len(cache) == 2 and cache.host(OTHER) is None
    cache.indexed(DID, [FOLLOW], replaced=True)
    cache.saved(DID, 3)
    assert (cache.collections(DID), cache.host(DID)) == ({FOLLOW}, 3)

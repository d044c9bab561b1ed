"""relay.ingest: what a new account's first event waits for (its row, its DID document) starts
when the event is read, ahead of its lane; an #identity takes the lookup started after it was
read as the fresh one it asks for, so the PLC is asked once per new account; a known
account's #identity still refreshes in its lane, in order."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from atcore.frames import IdentityEvent
from atcore.identity.diddoc import DidDocument
from atcore.identity.plc_client import PlcClient
from atcore.identity.resolver import IdentityResolver
from relay.db import Database, hosts
from relay.hostcursor import HostCursor
from relay.ingest import Ingest
from relay.metrics import Metrics
from relay.writer import Writer
from tests.relay.conftest import wait_until
from tests.relay.fake_pds import PLC_URL, FakeAccount, in_process_plc

HOST = "https://pds.example.com"
HANG = 60  # seconds: only a hang takes that long


class CountingResolver:
    """The real resolver, counting the lookups that reach the PLC."""

    def __init__(self, resolver: IdentityResolver) -> None:
        self.resolver = resolver
        self.lookups = 0

    async def resolve_did(self, did: str) -> DidDocument:
        if self.resolver.cached(did) is None:
            self.lookups += 1
        return await self.resolver.resolve_did(did)

    async def refresh(self, did: str) -> DidDocument:
        self.lookups += 1
        return await self.resolver.refresh(did)

    def cached(self, did: str) -> DidDocument | None:
        return self.resolver.cached(did)


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[tuple[CountingResolver, FakeAccount, Writer]]:
    async with in_process_plc(tmp_path) as http:
        alice = await FakeAccount.create(PlcClient(PLC_URL, http), HOST, "alice.test")
        db = Database(tmp_path / "relay.sqlite")
        await db.open()
        writer = Writer(db, replay_window=60.0, metrics=Metrics())
        await writer.start()
        try:
            yield CountingResolver(IdentityResolver(PLC_URL, http)), alice, writer
        finally:
            await writer.close()
            await db.close()


async def test_a_new_accounts_row_and_document_are_fetched_as_its_first_event_is_read(
    setup: tuple[CountingResolver, FakeAccount, Writer],
) -> None:
    resolver, alice, writer = setup
    ingest = Ingest(writer.db, writer, resolver, Metrics())
    try:
        host = await writer.run(hosts.create, "pds.example.com", "active", False, 100)
        identity = IdentityEvent(1, alice.did, "2025-01-01T00:00:00.000Z", "alice.test")
        genesis = dataclasses.replace(alice.genesis, seq=2)
        prepared = [ingest.prepare(event, host) for event in (identity, genesis)]
        # One lookup for the DID, started now; the commit behind waits for it.
        lookup = prepared[0].identity
        assert lookup is not None and prepared[1].identity is None
        assert (await asyncio.wait_for(lookup, HANG)).did == alice.did

        async def row_loaded() -> bool:
            return alice.did in writer.accounts

        await wait_until(row_loaded)  # before the lane applied anything
        assert resolver.lookups == 1
        position = HostCursor(host.id, 0, (), 10)
        for each in prepared:
            position.begin(each.event.seq)
            done = await ingest.apply(host, each, position)
            assert done is not None and await done is not None  # emitted
        assert resolver.lookups == 1  # the #identity's refresh was the lookup ahead

        # A known account's #identity refreshes in its lane, after the events before it.
        again = IdentityEvent(3, alice.did, "2025-01-01T00:00:01.000Z", "alice.test")
        later = ingest.prepare(again, host)
        assert later.identity is None and resolver.lookups == 1
        position.begin(3)
        done = await ingest.apply(host, later, position)
        assert done is not None and await done is not None
        assert resolver.lookups == 2
    finally:
        await ingest.close()

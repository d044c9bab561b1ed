"""After a migration: check that everything points at the new PDS (spec-account.md, "PDS
Account Migration": the DID document names the new host, which is active and holds a working
repository; spec-sync.md for the relay's view)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Final

from atcore.identity.resolver import IdentityResolver
from atcore.xrpc.client import XrpcClient, XrpcClientError
from skyloft.account.blobs import missing_blobs
from skyloft.account.identity import points_at
from skyloft.account.person import MigrationError
from skyloft.account.session import Session
from skyloft.account.state import MigrationState

RELAY_WAIT: Final = 30.0


async def check_migration(
    state: MigrationState,
    old: Session,
    new: Session,
    resolver: IdentityResolver,
    relay_url: str | None,
    say: Callable[[str], None],
) -> None:
    """Every check, each reported as `ok` or `FAILED`; MigrationError if any failed."""
    failed: list[str] = []

    def check(ok: bool, what: str) -> None:
        say(f"{'ok' if ok else 'FAILED'}: {what}")
        if not ok:
            failed.append(what)

    creds = await new.query("com.atproto.identity.getRecommendedDidCredentials")
    moved = await points_at(resolver, state.did, creds)
    check(moved, "DID document names the new PDS and its signing key")
    status = await new.query("com.atproto.server.checkAccountStatus")
    check(status["activated"] and status["validDid"], "account active on the new PDS")
    records = status["indexedRecords"]
    check(records == state.records, f"{records} records (the old PDS had {state.records})")
    expected, imported = status["expectedBlobs"], status["importedBlobs"]
    missing = await missing_blobs(new)
    check(
        imported == expected == state.blobs and not missing,
        f"{imported} of {expected} blobs (the old PDS had {state.blobs}), {len(missing)} missing",
    )
    old_status = await old.query("com.atproto.server.checkAccountStatus")
    check(not old_status["activated"], "account deactivated on the old PDS")
    if relay_url is not None:
        check(await _relay_follows(relay_url, new, status["repoRev"]), f"relay {relay_url}")
    if failed:
        raise MigrationError("migration check failed: " + "; ".join(failed))


async def _relay_follows(relay_url: str, new: Session, rev: str) -> bool:
    """Whether the relay reports the account active at the new PDS's revision (it may need a
    moment to crawl the new host, so it is asked again for a while)."""
    relay = XrpcClient(relay_url, new.client.http)
    did = new.info["did"]
    deadline = asyncio.get_running_loop().time() + RELAY_WAIT
    while True:
        try:
            seen = await relay.query("com.atproto.sync.getRepoStatus", {"did": did})
            if seen.get("active") and seen.get("rev", "") >= rev:
                return True
        except XrpcClientError:
            pass
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(1.0)

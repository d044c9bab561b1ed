"""Account status: activation, deactivation, takedown, deletion (spec-account.md,
guide-account-lifecycle.md).

Every status change is announced on the firehose: deactivation, takedown and deletion with
`#account`; activation with `#identity`, `#account` and a `#sync` of the current commit, so
consumers (re)start from it.
"""

from __future__ import annotations

from dataclasses import dataclass

from atcore.car import write_car
from atcore.errors import IdentityError
from atcore.xrpc.errors import InvalidRequest
from pds.accounts.account import Account
from pds.actor_store import RepoMissing
from pds.actor_store.sql import ActorSql, RootRow
from pds.context import AppContext

# Records counted per query when sizing a repo.


@dataclass(frozen=True)
class DidCheck:
    """Whether the account's DID document sends clients here with the key we sign with."""

    valid: bool
    reason: str


async def check_did(ctx: AppContext, did: str) -> DidCheck:
    try:
        doc = await ctx.resolver.refresh(did)
        key = await ctx.actors.signing_key(did)
    except (IdentityError, RepoMissing) as exc:
        return DidCheck(False, f"could not resolve the DID document: {exc}")
    if doc.pds_endpoint != ctx.config.public_url:
        return DidCheck(False, "DID document does not name this PDS as the account's host")
    if doc.signing_key != key.public_key():
        return DidCheck(False, "DID document's #atproto key is not the repo's signing key")
    return DidCheck(True, "")


async def repo_root(ctx: AppContext, did: str) -> tuple[RootRow, bytes] | None:
    """The repo's current commit and that commit block, if the repo exists."""
    try:
        store = await ctx.actors.open(did)
    except RepoMissing:
        return None

    def read(sql: ActorSql) -> tuple[RootRow, bytes] | None:
        root = sql.root()
        return None if root is None else (root, sql.get(root.cid))

    return await store.read(read)


async def repo_stats(ctx: AppContext, did: str) -> tuple[int, int, int, int]:
    """(blocks, indexed records, expected blobs, imported blobs) for checkAccountStatus."""
    store = await ctx.actors.open(did)
    return await store.read(ActorSql.stats)


async def activate(ctx: AppContext, account: Account) -> None:
    if account.takedown_ref is not None:
        raise InvalidRequest("Account has been taken down", "AccountTakedown")
    if account.deactivated_at is None:
        return
    check = await check_did(ctx, account.did)
    if not check.valid:
        raise InvalidRequest(check.reason)
    await ctx.accounts.set_deactivated(account.did, False)
    await ctx.sequencer.emit_identity(account.did, account.handle)
    await ctx.sequencer.emit_account(account.did, True, None)
    head = await repo_root(ctx, account.did)
    if head is not None:
        root, commit = head
        car = write_car(root.cid, [(root.cid, commit)])
        await ctx.sequencer.emit_sync(account.did, root.rev, car)


async def deactivate(ctx: AppContext, account: Account) -> None:
    if account.deactivated_at is not None:
        return
    await ctx.accounts.set_deactivated(account.did, True)
    # A taken-down account's status stays `takendown`: nothing new to announce.
    if account.takedown_ref is None:
        await ctx.sequencer.emit_account(account.did, False, "deactivated")


async def set_takedown(ctx: AppContext, account: Account, ref: str | None) -> None:
    """Take the account down (or restore it, `ref` None) and announce its new status: a
    taken-down account cannot log in, and its repo and blobs are no longer served."""
    if (account.takedown_ref is None) == (ref is None):
        await ctx.accounts.set_takedown(account.did, ref)
        return
    await ctx.accounts.set_takedown(account.did, ref)
    if ref is not None:
        await ctx.sequencer.emit_account(account.did, False, "takendown")
    elif account.deactivated_at is not None:
        await ctx.sequencer.emit_account(account.did, False, "deactivated")
    else:
        await ctx.sequencer.emit_account(account.did, True, None)


async def delete_account(ctx: AppContext, did: str) -> None:
    """Remove the account, its repo and blobs, then announce `#account` status `deleted`."""
    await ctx.actors.destroy(did)
    await ctx.accounts.delete(did)
    await ctx.sequencer.emit_account(did, False, "deleted")

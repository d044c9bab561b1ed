"""Finding the account and store behind a `repo`/`did` parameter, with the reference's errors."""

from __future__ import annotations

from atcore.xrpc.errors import AuthRequired, InvalidRequest
from pds.accounts.account import Account
from pds.actor_store import RepoMissing
from pds.actor_store.store import ActorStore
from pds.auth import AuthContext
from pds.context import AppContext

# sync.* names each unavailable state (lexicon errors); status -> error name.
_STATUS_ERRORS = {"takendown": "RepoTakendown", "suspended": "RepoSuspended"}


async def find_account(ctx: AppContext, repo: str) -> Account | None:
    """The hosted account named by a DID or handle."""
    if repo.startswith("did:"):
        return await ctx.accounts.by_did(repo)
    return await ctx.accounts.by_handle(repo.lower())


async def own_repo(
    ctx: AppContext, auth: AuthContext, repo: str, *, deactivated_ok: bool = False
) -> tuple[Account, ActorStore]:
    """The caller's own repo for a write: `repo` must name the authenticated account.

    `deactivated_ok`: what a migrating account does before activation (importRepo, blob
    uploads, listMissingBlobs), which the reference allows while it refuses record writes.
    """
    account = await find_account(ctx, repo)
    if account is None:
        raise InvalidRequest(f"Could not find repo: {repo}")
    if account.did != auth.did:
        raise AuthRequired()
    # 401, as the reference's account checks answer: the session no longer opens this repo.
    if account.takedown_ref is not None:
        raise AuthRequired("Account has been taken down", "AccountTakedown")
    if account.deactivated_at is not None and not deactivated_ok:
        raise AuthRequired("Account is deactivated", "AccountDeactivated")
    return account, await open_store(ctx, account.did)


async def readable_repo(ctx: AppContext, repo: str) -> tuple[Account, ActorStore]:
    """A hosted repo for com.atproto.repo reads (any status but taken down)."""
    account = await find_account(ctx, repo)
    if account is None or account.takedown_ref is not None:
        raise InvalidRequest(f"Could not find repo: {repo}")
    return account, await open_store(ctx, account.did)


async def synced_repo(ctx: AppContext, did: str) -> tuple[Account, ActorStore]:
    """A hosted repo for com.atproto.sync reads: only active accounts are served."""
    account = await ctx.accounts.by_did(did)
    if account is None:
        raise InvalidRequest(f"Could not find repo for DID: {did}", "RepoNotFound")
    status = account.status
    if status is not None:
        error = _STATUS_ERRORS.get(status, "RepoDeactivated")
        raise InvalidRequest(f"Repo has been {status}: {did}", error)
    return account, await open_store(ctx, did)


async def open_store(ctx: AppContext, did: str) -> ActorStore:
    try:
        return await ctx.actors.open(did)
    except RepoMissing:
        raise InvalidRequest(f"Could not find repo for DID: {did}", "RepoNotFound") from None


async def require_record_served(ctx: AppContext, did: str, uri: str) -> None:
    """RecordNotFound for a record an admin took down (it stays in the signed repo)."""
    if await ctx.accounts.subjects.takedown_ref("record", did, uri) is not None:
        raise InvalidRequest(f"Could not locate record: {uri}", "RecordNotFound")


async def hidden_records(ctx: AppContext, did: str, uris: list[str]) -> set[str]:
    """The records among `uris` an admin took down, left out of listings."""
    return await ctx.accounts.subjects.taken_down("record", did, uris)


async def require_blob_served(ctx: AppContext, did: str, cid: str) -> None:
    """BlobNotFound for a blob an admin took down (`cid` in its base32 form)."""
    if await ctx.accounts.subjects.takedown_ref("blob", did, cid) is not None:
        raise InvalidRequest("Blob not found", "BlobNotFound")

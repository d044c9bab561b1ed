"""com.atproto.sync repo methods of a relay: the firehose, repo listings and redirects
(spec-sync.md; lexicons com/atproto/sync/*)."""

from __future__ import annotations

from typing import Any

from starlette.responses import RedirectResponse

from atcore.errors import IdentityError
from atcore.xrpc.errors import InvalidRequest, UpstreamFailure
from atcore.xrpc.router import Methods, SubscriptionRequest, XrpcRequest
from relay.context import RelayContext, ctx_of
from relay.db import accounts
from relay.db.accounts import AccountRow

xrpc = Methods()

DELIVERED = "relay_events_delivered_total"


@xrpc.subscription("com.atproto.sync.subscribeRepos")
async def subscribe_repos(sub: SubscriptionRequest) -> None:
    ctx = ctx_of(sub)
    delivered = 0
    try:
        async for frames in ctx.writer.subscribe_batches(sub.params.get("cursor")):
            await sub.send_frames(frames)
            delivered += len(frames)
    finally:
        ctx.metrics.inc(DELIVERED, delivered)


async def _account(ctx: RelayContext, did: str) -> AccountRow:
    account = await ctx.db.read(accounts.get, did)
    if account is None:
        raise InvalidRequest(f"Could not find repo for DID: {did}", "RepoNotFound")
    return account


def _status_fields(account: AccountRow) -> dict[str, Any]:
    status = account.public_status
    return {"active": True} if status == "active" else {"active": False, "status": status}


@xrpc.query("com.atproto.sync.getRepoStatus")
async def get_repo_status(req: XrpcRequest) -> dict[str, Any]:
    account = await _account(ctx_of(req), req.params["did"])
    out: dict[str, Any] = {"did": account.did, **_status_fields(account)}
    if out["active"] and account.state.rev is not None:
        out["rev"] = account.state.rev
    return out


@xrpc.query("com.atproto.sync.getLatestCommit")
async def get_latest_commit(req: XrpcRequest) -> dict[str, Any]:
    account = await _account(ctx_of(req), req.params["did"])
    status = account.public_status
    if status == "takendown":
        raise InvalidRequest(f"Repo has been taken down: {account.did}", "RepoTakendown")
    if status not in ("active", "desynchronized"):
        raise InvalidRequest(f"Repo is not active: {account.did}", "RepoDeactivated")
    if account.state.head is None or account.state.rev is None:
        raise InvalidRequest(f"No commit seen for DID: {account.did}", "RepoNotFound")
    return {"cid": account.state.head.encode(), "rev": account.state.rev}


@xrpc.query("com.atproto.sync.listRepos")
async def list_repos(req: XrpcRequest) -> dict[str, Any]:
    ctx = ctx_of(req)
    limit = req.params.get("limit", 500)
    rows = await ctx.db.read(accounts.page, req.params.get("cursor", ""), limit)
    repos = []
    for account in rows:
        assert account.state.head is not None and account.state.rev is not None
        repo = {"did": account.did, "head": account.state.head.encode(), "rev": account.state.rev}
        repos.append({**repo, **_status_fields(account)})
    out: dict[str, Any] = {"repos": repos}
    if len(rows) == limit:
        out["cursor"] = rows[-1].did
    return out


@xrpc.query("com.atproto.sync.listReposByCollection")
async def list_repos_by_collection(req: XrpcRequest) -> dict[str, Any]:
    ctx = ctx_of(req)
    limit = req.params.get("limit", 500)
    collection, after = req.params["collection"], req.params.get("cursor", "")
    dids = await ctx.db.read(accounts.dids_with_collection, collection, after, limit)
    out: dict[str, Any] = {"repos": [{"did": did} for did in dids]}
    if len(dids) == limit:
        out["cursor"] = dids[-1]
    return out


async def _redirect_to_pds(req: XrpcRequest) -> RedirectResponse:
    """The relay keeps no repo data: getRepo and getBlob go to the account's PDS."""
    ctx = ctx_of(req)
    account = await _account(ctx, req.params["did"])
    if account.takedown:
        raise InvalidRequest(f"Repo has been taken down: {account.did}", "RepoTakendown")
    try:
        pds = (await ctx.resolver.resolve_did(account.did)).pds_endpoint
    except IdentityError as exc:
        raise UpstreamFailure(f"cannot resolve {account.did}: {exc}") from None
    if pds is None:
        raise UpstreamFailure(f"{account.did} has no PDS")
    query = req.request.url.query
    return RedirectResponse(f"{pds.rstrip('/')}/xrpc/{req.nsid}?{query}", status_code=302)


xrpc.query("com.atproto.sync.getRepo")(_redirect_to_pds)
xrpc.query("com.atproto.sync.getBlob")(_redirect_to_pds)

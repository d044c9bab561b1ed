"""com.atproto.server invite codes: created by the admin, earned by accounts over time
(lexicons createInviteCode, createInviteCodes, getAccountInviteCodes; PDS_INVITE_REQUIRED,
PDS_INVITE_INTERVAL, PDS_INVITE_EPOCH)."""

from __future__ import annotations

import time
from typing import Any, Final

from atcore.xrpc.errors import InvalidRequest
from atcore.xrpc.router import Methods, XrpcRequest
from pds.accounts.invites import ADMIN_CREATOR, InvitePolicy, earned_count
from pds.accounts.sessions import caller_account
from pds.auth import access_full, admin_auth
from pds.context import ctx_of

xrpc = Methods()

MAX_INVITE_CODES: Final = 100
MAX_INVITE_USES: Final = 10_000


def _check_uses(count: int, name: str, maximum: int) -> None:
    if not 1 <= count <= maximum:
        raise InvalidRequest(f"{name} must be between 1 and {maximum}")


@xrpc.procedure("com.atproto.server.createInviteCode", auth=admin_auth)
async def create_invite_code(req: XrpcRequest) -> dict[str, Any]:
    ctx = ctx_of(req)
    _check_uses(req.input["useCount"], "useCount", MAX_INVITE_USES)
    for_account = req.input.get("forAccount", ADMIN_CREATOR)
    codes = await ctx.accounts.create_invite_codes(
        1, req.input["useCount"], for_account, ADMIN_CREATOR
    )
    return {"code": codes[0]}


@xrpc.procedure("com.atproto.server.createInviteCodes", auth=admin_auth)
async def create_invite_codes(req: XrpcRequest) -> dict[str, Any]:
    ctx = ctx_of(req)
    count, uses = req.input.get("codeCount", 1), req.input["useCount"]
    _check_uses(count, "codeCount", MAX_INVITE_CODES)
    _check_uses(uses, "useCount", MAX_INVITE_USES)
    owners = req.input.get("forAccounts") or [ADMIN_CREATOR]
    if len(owners) > MAX_INVITE_CODES:
        raise InvalidRequest(f"at most {MAX_INVITE_CODES} forAccounts")
    return {
        "codes": [
            {
                "account": owner,
                "codes": await ctx.accounts.create_invite_codes(count, uses, owner, ADMIN_CREATOR),
            }
            for owner in owners
        ]
    }


@xrpc.query("com.atproto.server.getAccountInviteCodes", auth=access_full)
async def get_account_invite_codes(req: XrpcRequest) -> dict[str, Any]:
    ctx = ctx_of(req)
    account = await caller_account(ctx, req.auth.did)
    codes = await ctx.accounts.invites.for_account(account.did)
    config = ctx.config
    if (
        req.params.get("createAvailable", True)
        and config.invite_required
        and config.invite_interval_ms is not None
    ):
        policy = InvitePolicy(config.invite_interval_ms, config.invite_epoch_ms)
        count = earned_count(codes, account.created_at, int(time.time() * 1000), policy)
        if count > 0:
            # Codes earned while invites are disabled are still recorded, but disabled.
            disabled, _ = await ctx.accounts.invites.account_settings(account.did)
            await ctx.accounts.create_invite_codes(
                count, 1, account.did, account.did, disabled=disabled
            )
            codes = await ctx.accounts.invites.for_account(account.did)
    include_used = req.params.get("includeUsed", True)
    return {
        "codes": [
            code
            for code in codes
            if not code["disabled"] and (include_used or len(code["uses"]) < code["available"])
        ]
    }

"""com.atproto.server.*: accounts and sessions (lexicons com/atproto/server; spec-xrpc.md auth)."""

from __future__ import annotations

import secrets
import time
from typing import Any, Final

from atcore.errors import IdentityError, PlcRequestError
from atcore.syntax.did import is_valid_did
from atcore.xrpc.errors import AuthRequired, InvalidRequest, UpstreamFailure
from atcore.xrpc.router import Methods, XrpcRequest
from pds.accounts.create import NewAccount
from pds.accounts.create import create_account as create_new_account
from pds.accounts.passwords import verify_password
from pds.accounts.sessions import (
    caller_account,
    create_tokens,
    did_doc,
    rotate_tokens,
    session_view,
)
from pds.accounts.status import activate, check_did, deactivate, repo_counts, repo_root
from pds.accounts.tokens import RefreshRefused
from pds.auth import (
    AuthContext,
    access_auth,
    admin_auth,
    bearer_token,
    refresh_auth,
    verify_service_token,
)
from pds.context import ctx_of
from pds.jwt import encode_es

xrpc = Methods()

SERVICE_AUTH_DEFAULT_SECONDS: Final = 60
SERVICE_AUTH_MAX_SECONDS: Final = 3600
MAX_INVITE_CODES: Final = 100
MAX_INVITE_USES: Final = 10_000
_BAD_LOGIN: Final = "Invalid identifier or password"


@xrpc.query("com.atproto.server.describeServer")
async def describe_server(req: XrpcRequest) -> dict[str, Any]:
    ctx = ctx_of(req)
    return {
        "did": ctx.service_did,
        "availableUserDomains": list(ctx.config.handle_domains),
        "inviteCodeRequired": ctx.config.invite_required,
        "phoneVerificationRequired": False,
        "links": {},
        "contact": {},
    }


@xrpc.procedure("com.atproto.server.createAccount")
async def create_account(req: XrpcRequest) -> dict[str, Any]:
    ctx = ctx_of(req)
    body = req.input
    did = body.get("did")
    if did is not None:
        # Migration: the caller proves control of the DID with a token its key signed.
        token = bearer_token(req.request)
        if token is None:
            raise AuthRequired("Missing auth to create account with existing DID")
        issuer = await verify_service_token(ctx, token, req.nsid)
        if issuer != did:
            raise AuthRequired("Auth token did not match the DID being created")
    new = NewAccount(
        handle=body["handle"],
        email=body.get("email"),
        password=body.get("password"),
        invite_code=body.get("inviteCode"),
        did=did,
        recovery_key=body.get("recoveryKey"),
    )
    try:
        account = await create_new_account(ctx, new)
    except PlcRequestError as exc:
        raise InvalidRequest(f"PLC directory refused the DID: {exc}") from None
    except IdentityError as exc:
        raise UpstreamFailure(f"PLC directory unavailable: {exc}") from None
    result: dict[str, Any] = {
        **await create_tokens(ctx, account.did),
        "handle": account.handle,
        "did": account.did,
    }
    doc = await did_doc(ctx, account.did)
    if doc is not None:
        result["didDoc"] = doc
    return result


@xrpc.procedure("com.atproto.server.createSession")
async def create_session(req: XrpcRequest) -> dict[str, Any]:
    ctx = ctx_of(req)
    identifier: str = req.input["identifier"].strip().lower()
    account = await ctx.accounts.find(identifier)
    hashed = account.password_hash if account is not None else None
    if account is None or not hashed or not await verify_password(req.input["password"], hashed):
        raise AuthRequired(_BAD_LOGIN)
    if account.takedown_ref is not None and not req.input.get("allowTakendown"):
        raise AuthRequired("Account has been taken down", "AccountTakedown")
    return await session_view(ctx, account, **await create_tokens(ctx, account.did))


@xrpc.query("com.atproto.server.getSession", auth=access_auth)
async def get_session(req: XrpcRequest) -> dict[str, Any]:
    ctx = ctx_of(req)
    return await session_view(ctx, await caller_account(ctx, req.auth.did))


@xrpc.procedure("com.atproto.server.refreshSession", auth=refresh_auth)
async def refresh_session(req: XrpcRequest) -> dict[str, Any]:
    ctx = ctx_of(req)
    auth: AuthContext = req.auth
    account = await caller_account(ctx, auth.did)
    if account.takedown_ref is not None:
        raise InvalidRequest("Account has been taken down", "AccountTakedown")
    assert auth.token_id is not None
    try:
        tokens = await rotate_tokens(ctx, auth.did, auth.token_id)
    except RefreshRefused as exc:
        raise InvalidRequest(str(exc), "ExpiredToken") from None
    return await session_view(ctx, account, **tokens)


@xrpc.procedure("com.atproto.server.deleteSession", auth=refresh_auth)
async def delete_session(req: XrpcRequest) -> None:
    assert req.auth.token_id is not None
    await ctx_of(req).accounts.tokens.revoke_refresh(req.auth.token_id)


@xrpc.query("com.atproto.server.getServiceAuth", auth=access_auth)
async def get_service_auth(req: XrpcRequest) -> dict[str, Any]:
    ctx = ctx_of(req)
    now = int(time.time())
    exp = req.params.get("exp", now + SERVICE_AUTH_DEFAULT_SECONDS)
    lxm = req.params.get("lxm")
    aud: str = req.params["aud"]
    if not is_valid_did(aud.partition("#")[0]):
        raise InvalidRequest("aud must be a DID or a DID#service reference")
    if exp <= now:
        raise InvalidRequest("expiration is in past", "BadExpiration")
    if exp - now > SERVICE_AUTH_MAX_SECONDS:
        raise InvalidRequest(
            "cannot request a token with an expiration more than an hour in the future",
            "BadExpiration",
        )
    if lxm is None and exp - now > SERVICE_AUTH_DEFAULT_SECONDS:
        raise InvalidRequest(
            "cannot request a method-less token that expires more than 60 seconds in the future",
            "BadExpiration",
        )
    claims: dict[str, Any] = {"iat": now, "iss": req.auth.did, "aud": aud, "exp": exp}
    if lxm is not None:
        claims["lxm"] = lxm
    claims["jti"] = secrets.token_hex(16)
    key = await ctx.actors.signing_key(req.auth.did)
    return {"token": encode_es(claims, key)}


@xrpc.query("com.atproto.server.checkAccountStatus", auth=access_auth)
async def check_account_status(req: XrpcRequest) -> dict[str, Any]:
    ctx = ctx_of(req)
    account = await caller_account(ctx, req.auth.did)
    head = await repo_root(ctx, account.did)
    if head is None:
        raise InvalidRequest("Repo not found", "RepoNotFound")
    root = head[0]
    blocks, records = await repo_counts(ctx, account.did)
    return {
        "activated": account.active,
        "validDid": (await check_did(ctx, account.did)).valid,
        "repoCommit": root.cid.encode(),
        "repoRev": root.rev,
        "repoBlocks": blocks,
        "indexedRecords": records,
        "privateStateValues": 0,
        # Blob tracking is not there yet: no record here refers to a stored blob.
        "expectedBlobs": 0,
        "importedBlobs": 0,
    }


@xrpc.procedure("com.atproto.server.activateAccount", auth=access_auth)
async def activate_account(req: XrpcRequest) -> None:
    ctx = ctx_of(req)
    await activate(ctx, await caller_account(ctx, req.auth.did))


@xrpc.procedure("com.atproto.server.deactivateAccount", auth=access_auth)
async def deactivate_account(req: XrpcRequest) -> None:
    ctx = ctx_of(req)
    await deactivate(ctx, await caller_account(ctx, req.auth.did))


def _check_uses(count: int, name: str, maximum: int) -> None:
    if not 1 <= count <= maximum:
        raise InvalidRequest(f"{name} must be between 1 and {maximum}")


@xrpc.procedure("com.atproto.server.createInviteCode", auth=admin_auth)
async def create_invite_code(req: XrpcRequest) -> dict[str, Any]:
    ctx = ctx_of(req)
    _check_uses(req.input["useCount"], "useCount", MAX_INVITE_USES)
    for_account = req.input.get("forAccount", "admin")
    codes = await ctx.accounts.create_invite_codes(1, req.input["useCount"], for_account, "admin")
    return {"code": codes[0]}


@xrpc.procedure("com.atproto.server.createInviteCodes", auth=admin_auth)
async def create_invite_codes(req: XrpcRequest) -> dict[str, Any]:
    ctx = ctx_of(req)
    count, uses = req.input.get("codeCount", 1), req.input["useCount"]
    _check_uses(count, "codeCount", MAX_INVITE_CODES)
    _check_uses(uses, "useCount", MAX_INVITE_USES)
    owners = req.input.get("forAccounts") or ["admin"]
    if len(owners) > MAX_INVITE_CODES:
        raise InvalidRequest(f"at most {MAX_INVITE_CODES} forAccounts")
    return {
        "codes": [
            {
                "account": owner,
                "codes": await ctx.accounts.create_invite_codes(count, uses, owner, "admin"),
            }
            for owner in owners
        ]
    }

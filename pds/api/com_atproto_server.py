"""com.atproto.server.*: accounts, sessions and app passwords (lexicons com/atproto/server;
spec-xrpc.md auth). Invites are in com_atproto_server_invites, mailed flows in _email.

A session opened with an app password has scope com.atproto.appPass (or appPassPrivileged);
it may not manage the account's credentials, email or app passwords (`access_full`). A
taken-down account's session (`allowTakendown`) has scope com.atproto.takendown (pds.auth).
"""

from __future__ import annotations

import time
from typing import Any, Final

from atcore.cid import cid_text
from atcore.errors import IdentityError, PlcRequestError
from atcore.syntax.datetime import now_iso
from atcore.syntax.did import is_valid_did
from atcore.xrpc.errors import AuthRequired, InvalidRequest, UpstreamFailure
from atcore.xrpc.router import Methods, XrpcRequest
from pds.accounts.account import Account
from pds.accounts.app_passwords import (
    MAX_APP_PASSWORDS,
    MAX_NAME_LENGTH,
    AppPassword,
    DuplicateAppPassword,
    TooManyAppPasswords,
)
from pds.accounts.create import NewAccount
from pds.accounts.create import create_account as create_new_account
from pds.accounts.passwords import verify_password
from pds.accounts.sessions import (
    SERVICE_JWT_SECONDS,
    caller_account,
    create_tokens,
    rotate_tokens,
    service_jwt,
    session_view,
)
from pds.accounts.status import activate, check_did, deactivate, repo_root, repo_stats
from pds.accounts.tokens import RefreshRefused
from pds.auth import (
    PRIVILEGED_METHODS,
    PROTECTED_METHODS,
    AuthContext,
    access_auth,
    access_full,
    access_full_or_takendown,
    access_or_takendown,
    bearer_token,
    refresh_auth,
    verify_service_token,
)
from pds.context import AppContext, ctx_of

xrpc = Methods()

SERVICE_AUTH_MAX_SECONDS: Final = 3600
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
    doc = await ctx.did_docs.get(account.did)
    if doc is not None:
        result["didDoc"] = doc
    return result


@xrpc.procedure("com.atproto.server.createSession")
async def create_session(req: XrpcRequest) -> dict[str, Any]:
    ctx = ctx_of(req)
    identifier: str = req.input["identifier"].strip()
    if not identifier.startswith("did:"):
        # Handles and emails are case-insensitive; DIDs are not (did:web's "%3A" port).
        identifier = identifier.lower()
    account = await ctx.accounts.find(identifier)
    if account is None:
        raise AuthRequired(_BAD_LOGIN)
    app_password = await _check_login(ctx, account, req.input["password"])
    takendown = account.takedown_ref is not None
    # `allowTakendown` opens a session limited to what a taken-down user may still do, some
    # of which (deactivation, PLC operations) is account management that app passwords never
    # reach: so only the account password opens one.
    if takendown and (app_password is not None or not req.input.get("allowTakendown")):
        raise AuthRequired("Account has been taken down", "AccountTakedown")
    tokens = await create_tokens(ctx, account.did, app_password, takendown=takendown)
    return await session_view(ctx, account, **tokens)


async def _check_login(ctx: AppContext, account: Account, password: str) -> AppPassword | None:
    """None for the account password, the app password used, or AuthRequired. An app password
    is tried first when the text has its shape: one lookup instead of an argon2 run."""
    app_password = await ctx.accounts.app_passwords.verify(account.did, password)
    if app_password is not None:
        return app_password
    hashed = account.password_hash
    if not hashed or not await verify_password(password, hashed):
        raise AuthRequired(_BAD_LOGIN)
    return None


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
        raise AuthRequired("Account has been taken down", "AccountTakedown")
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


@xrpc.query("com.atproto.server.getServiceAuth", auth=access_or_takendown)
async def get_service_auth(req: XrpcRequest) -> dict[str, Any]:
    ctx = ctx_of(req)
    auth: AuthContext = req.auth
    now = int(time.time())
    exp = req.params.get("exp", now + SERVICE_JWT_SECONDS)
    lxm = req.params.get("lxm")
    aud: str = req.params["aud"]
    if not is_valid_did(aud.partition("#")[0]):
        raise InvalidRequest("aud must be a DID or a DID#service reference")
    # The reference's checks, in its order and with its answers.
    if lxm in PRIVILEGED_METHODS and not auth.privileged:
        raise InvalidRequest(
            f"insufficient access to request a service auth token for the following method: {lxm}"
        )
    if exp <= now:
        raise InvalidRequest("expiration is in past", "BadExpiration")
    if exp - now > SERVICE_AUTH_MAX_SECONDS:
        raise InvalidRequest(
            "cannot request a token with an expiration more than an hour in the future",
            "BadExpiration",
        )
    if lxm is None and exp - now > SERVICE_JWT_SECONDS:
        raise InvalidRequest(
            "cannot request a method-less token that expires more than 60 seconds in the future",
            "BadExpiration",
        )
    if lxm in PROTECTED_METHODS:
        raise InvalidRequest(
            f"cannot request a service auth token for the following protected method: {lxm}"
        )
    return {"token": await service_jwt(ctx, auth.did, aud, lxm, exp)}


@xrpc.query("com.atproto.server.checkAccountStatus", auth=access_auth)
async def check_account_status(req: XrpcRequest) -> dict[str, Any]:
    ctx = ctx_of(req)
    account = await caller_account(ctx, req.auth.did)
    head = await repo_root(ctx, account.did)
    if head is None:
        raise InvalidRequest("Repo not found", "RepoNotFound")
    root = head[0]
    blocks, records, expected_blobs, imported_blobs = await repo_stats(ctx, account.did)
    return {
        "activated": account.active,
        "validDid": (await check_did(ctx, account.did)).valid,
        "repoCommit": cid_text(root.cid),
        "repoRev": root.rev,
        "repoBlocks": blocks,
        "indexedRecords": records,
        "privateStateValues": 0,
        "expectedBlobs": expected_blobs,
        "importedBlobs": imported_blobs,
    }


@xrpc.procedure("com.atproto.server.activateAccount", auth=access_full)
async def activate_account(req: XrpcRequest) -> None:
    ctx = ctx_of(req)
    await activate(ctx, await caller_account(ctx, req.auth.did))


@xrpc.procedure("com.atproto.server.deactivateAccount", auth=access_full_or_takendown)
async def deactivate_account(req: XrpcRequest) -> None:
    ctx = ctx_of(req)
    await deactivate(ctx, await caller_account(ctx, req.auth.did))


@xrpc.procedure("com.atproto.server.createAppPassword", auth=access_full)
async def create_app_password(req: XrpcRequest) -> dict[str, Any]:
    ctx = ctx_of(req)
    name = req.input["name"].strip()
    privileged = bool(req.input.get("privileged", False))
    if not name or len(name) > MAX_NAME_LENGTH:
        raise InvalidRequest(f"name must be 1-{MAX_NAME_LENGTH} characters")
    created_at = now_iso()
    try:
        password = await ctx.accounts.app_passwords.create(
            req.auth.did, name, privileged, created_at
        )
    except DuplicateAppPassword:
        raise InvalidRequest(f"An app password named {name!r} already exists") from None
    except TooManyAppPasswords:
        raise InvalidRequest(f"An account has at most {MAX_APP_PASSWORDS} app passwords") from None
    return {"name": name, "password": password, "createdAt": created_at, "privileged": privileged}


@xrpc.query("com.atproto.server.listAppPasswords", auth=access_auth)
async def list_app_passwords(req: XrpcRequest) -> dict[str, Any]:
    passwords = await ctx_of(req).accounts.app_passwords.list(req.auth.did)
    return {
        "passwords": [
            {"name": p.name, "createdAt": p.created_at, "privileged": p.privileged}
            for p in passwords
        ]
    }


@xrpc.procedure("com.atproto.server.revokeAppPassword", auth=access_full)
async def revoke_app_password(req: XrpcRequest) -> None:
    await ctx_of(req).accounts.app_passwords.revoke(req.auth.did, req.input["name"])

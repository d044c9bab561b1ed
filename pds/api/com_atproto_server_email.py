"""com.atproto.server methods confirmed by a mailed code: email confirmation and change,
password reset, account deletion (lexicons com/atproto/server; pds-README-self-hosting.md
"Setting up SMTP"). Codes come from pds.accounts.email_tokens and go out through pds.mailer."""

from __future__ import annotations

from typing import Any

from atcore.xrpc.errors import AuthRequired, InvalidRequest
from atcore.xrpc.router import Methods, XrpcRequest
from pds import mailer
from pds.accounts import email_tokens
from pds.accounts.create import check_password, normalize_email
from pds.accounts.passwords import hash_password, verify_password
from pds.accounts.sessions import caller_account
from pds.accounts.status import delete_account as remove_account
from pds.accounts.store import EmailTaken
from pds.auth import access_full
from pds.context import ctx_of

xrpc = Methods()


@xrpc.procedure("com.atproto.server.requestEmailConfirmation", auth=access_full)
async def request_email_confirmation(req: XrpcRequest) -> None:
    ctx = ctx_of(req)
    account = await caller_account(ctx, req.auth.did)
    await email_tokens.mail_code(ctx, account, "confirm_email", mailer.confirm_email)


@xrpc.procedure("com.atproto.server.confirmEmail", auth=access_full)
async def confirm_email(req: XrpcRequest) -> None:
    ctx = ctx_of(req)
    account = await caller_account(ctx, req.auth.did)
    if account.email != req.input["email"].lower():
        raise InvalidRequest("invalid email", "InvalidEmail")
    await email_tokens.redeem(ctx, "confirm_email", account.did, req.input["token"])
    await ctx.accounts.confirm_email(account.did)


@xrpc.procedure("com.atproto.server.requestEmailUpdate", auth=access_full)
async def request_email_update(req: XrpcRequest) -> dict[str, Any]:
    ctx = ctx_of(req)
    account = await caller_account(ctx, req.auth.did)
    if account.email is None:
        raise InvalidRequest("account does not have an email address")
    # A confirmed address must approve its replacement; an unconfirmed one proves nothing.
    token_required = account.email_confirmed_at is not None
    if token_required:
        await email_tokens.mail_code(ctx, account, "update_email", mailer.update_email)
    return {"tokenRequired": token_required}


@xrpc.procedure("com.atproto.server.updateEmail", auth=access_full)
async def update_email(req: XrpcRequest) -> None:
    ctx = ctx_of(req)
    account = await caller_account(ctx, req.auth.did)
    email = normalize_email(req.input["email"])
    if account.email_confirmed_at is not None:
        token = req.input.get("token")
        if not token:
            raise InvalidRequest("confirmation token required", "TokenRequired")
        await email_tokens.redeem(ctx, "update_email", account.did, token)
    if email == account.email:
        return
    try:
        await ctx.accounts.set_email(account.did, email)
    except EmailTaken:
        raise InvalidRequest(
            "This email address is already in use, please use a different email."
        ) from None


@xrpc.procedure("com.atproto.server.requestPasswordReset")
async def request_password_reset(req: XrpcRequest) -> None:
    ctx = ctx_of(req)
    account = await ctx.accounts.by_email(req.input["email"])
    # Unknown addresses get the same empty answer: no probing which emails have accounts.
    if account is None or account.email is None:
        return
    handle = account.handle
    await email_tokens.mail_code(
        ctx, account, "reset_password", lambda token: mailer.reset_password(handle, token)
    )


@xrpc.procedure("com.atproto.server.resetPassword")
async def reset_password(req: XrpcRequest) -> None:
    ctx = ctx_of(req)
    token: str = req.input["token"]
    password = check_password(req.input["password"])
    did = None
    if len(token) <= email_tokens.MAX_TOKEN_LENGTH:
        did = await ctx.accounts.tokens.find_email_token("reset_password", token)
    if did is None:
        raise InvalidRequest("Token is invalid", "InvalidToken")
    await email_tokens.redeem(ctx, "reset_password", did, token)
    await ctx.accounts.set_password(did, await hash_password(password))


@xrpc.procedure("com.atproto.server.requestAccountDelete", auth=access_full)
async def request_account_delete(req: XrpcRequest) -> None:
    ctx = ctx_of(req)
    account = await caller_account(ctx, req.auth.did)
    await email_tokens.mail_code(ctx, account, "delete_account", mailer.delete_account)


@xrpc.procedure("com.atproto.server.deleteAccount")
async def delete_account(req: XrpcRequest) -> None:
    ctx = ctx_of(req)
    did: str = req.input["did"]
    account = await ctx.accounts.by_did(did)
    if account is None:
        raise InvalidRequest("account not found")
    hashed = account.password_hash
    # Only the account password deletes an account, never an app password.
    if not hashed or not await verify_password(req.input["password"], hashed):
        raise AuthRequired("Invalid did or password")
    await email_tokens.redeem(ctx, "delete_account", did, req.input["token"])
    await remove_account(ctx, did)

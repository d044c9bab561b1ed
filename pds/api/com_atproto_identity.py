"""com.atproto.identity.*: handles and the account's DID (lexicons com/atproto/identity;
pds-ACCOUNT_MIGRATION.md for the PLC signing flow)."""

from __future__ import annotations

import base64
import logging
import secrets
from typing import Any, Final

from atcore.errors import IdentityError, PlcRequestError
from atcore.identity.plc import PDS_SERVICE, PDS_SERVICE_TYPE, SIGNING_KEY_ID
from atcore.xrpc.errors import InvalidRequest, UpstreamFailure
from atcore.xrpc.router import Methods, XrpcRequest
from pds.accounts.handles import normalize_handle
from pds.accounts.plc_ops import check_incoming, sign_update
from pds.accounts.plc_ops import update_handle as plc_update_handle
from pds.accounts.sessions import caller_account
from pds.accounts.store import HandleTaken
from pds.auth import access_auth
from pds.context import ctx_of

log = logging.getLogger(__name__)
xrpc = Methods()

PLC_TOKEN_PURPOSE: Final = "plc_operation"
# How long an emailed confirmation code stays valid.
EMAIL_TOKEN_SECONDS: Final = 15 * 60


def _plc_failure(exc: IdentityError) -> Exception:
    if isinstance(exc, PlcRequestError):
        return InvalidRequest(f"PLC directory refused the operation: {exc}")
    return UpstreamFailure(f"PLC directory unavailable: {exc}")


@xrpc.query("com.atproto.identity.resolveHandle")
async def resolve_handle(req: XrpcRequest) -> dict[str, Any]:
    ctx = ctx_of(req)
    handle: str = req.params["handle"].lower()
    account = await ctx.accounts.by_handle(handle)
    if account is not None:
        return {"did": account.did}
    try:
        did = await ctx.resolver.resolve_handle(handle)
    except IdentityError:
        did = None
    if did is None:
        raise InvalidRequest("Unable to resolve handle", "HandleNotFound")
    return {"did": did}


@xrpc.procedure("com.atproto.identity.updateHandle", auth=access_auth)
async def update_handle(req: XrpcRequest) -> None:
    ctx = ctx_of(req)
    did: str = req.auth.did
    account = await caller_account(ctx, did)
    handle = await normalize_handle(ctx, req.input["handle"], did)
    taken = await ctx.accounts.by_handle(handle)
    if taken is not None and taken.did != did:
        raise InvalidRequest(f"Handle already taken: {handle}", "HandleNotAvailable")
    try:
        await plc_update_handle(ctx, did, handle)
    except IdentityError as exc:
        raise _plc_failure(exc) from None
    try:
        await ctx.accounts.set_handle(did, handle)
    except HandleTaken:
        raise InvalidRequest(f"Handle already taken: {handle}", "HandleNotAvailable") from None
    if account.active:
        await ctx.sequencer.emit_identity(did, handle)


@xrpc.query("com.atproto.identity.getRecommendedDidCredentials", auth=access_auth)
async def get_recommended_did_credentials(req: XrpcRequest) -> dict[str, Any]:
    ctx = ctx_of(req)
    account = await caller_account(ctx, req.auth.did)
    key = await ctx.actors.signing_key(account.did)
    return {
        "rotationKeys": [ctx.plc_rotation_key.public_key().did_key()],
        "alsoKnownAs": [f"at://{account.handle}"],
        "verificationMethods": {SIGNING_KEY_ID: key.public_key().did_key()},
        "services": {PDS_SERVICE: {"type": PDS_SERVICE_TYPE, "endpoint": ctx.config.public_url}},
    }


def _email_token() -> str:
    """A code people can type: two groups of five base32 characters, as the reference sends."""
    raw = base64.b32encode(secrets.token_bytes(10)).decode("ascii")[:10]
    return f"{raw[:5]}-{raw[5:]}"


@xrpc.procedure("com.atproto.identity.requestPlcOperationSignature", auth=access_auth)
async def request_plc_operation_signature(req: XrpcRequest) -> None:
    ctx = ctx_of(req)
    account = await caller_account(ctx, req.auth.did)
    if account.email is None:
        raise InvalidRequest("account does not have an email address")
    token = _email_token()
    await ctx.accounts.tokens.put_email_token(PLC_TOKEN_PURPOSE, account.did, token)
    # Mail delivery comes later; until then the code is only in the log, in dev mode.
    if ctx.config.dev_mode:
        log.warning("PLC operation code for %s <%s>: %s", account.did, account.email, token)


@xrpc.procedure("com.atproto.identity.signPlcOperation", auth=access_auth)
async def sign_plc_operation(req: XrpcRequest) -> dict[str, Any]:
    ctx = ctx_of(req)
    did: str = req.auth.did
    token = req.input.get("token")
    if not token:
        raise InvalidRequest("email confirmation token required to sign PLC operations")
    refused = await ctx.accounts.tokens.take_email_token(
        PLC_TOKEN_PURPOSE, did, token, EMAIL_TOKEN_SECONDS
    )
    if refused == "expired":
        raise InvalidRequest("Token is expired", "ExpiredToken")
    if refused:
        raise InvalidRequest("Token is invalid", "InvalidToken")
    try:
        return {"operation": await sign_update(ctx, did, req.input)}
    except IdentityError as exc:
        raise _plc_failure(exc) from None


@xrpc.procedure("com.atproto.identity.submitPlcOperation", auth=access_auth)
async def submit_plc_operation(req: XrpcRequest) -> None:
    ctx = ctx_of(req)
    account = await caller_account(ctx, req.auth.did)
    op = await check_incoming(ctx, account.did, req.input["operation"], account.handle)
    try:
        await ctx.plc.submit(account.did, op)
    except IdentityError as exc:
        raise _plc_failure(exc) from None
    ctx.resolver.invalidate(account.did)
    if account.active:
        await ctx.sequencer.emit_identity(account.did, account.handle)

"""com.atproto.identity.*: handles and the account's DID (lexicons com/atproto/identity;
pds-ACCOUNT_MIGRATION.md for the PLC signing flow)."""

from __future__ import annotations

from typing import Any

from atcore.errors import IdentityError
from atcore.identity.plc import PDS_SERVICE, PDS_SERVICE_TYPE, SIGNING_KEY_ID
from atcore.xrpc.errors import InvalidRequest
from atcore.xrpc.router import Methods, XrpcRequest
from pds import mailer
from pds.accounts import email_tokens
from pds.accounts.handles import change_handle
from pds.accounts.plc_ops import check_incoming, plc_failure, sign_update
from pds.accounts.sessions import caller_account
from pds.auth import access_auth, access_full, access_full_or_takendown
from pds.context import ctx_of

xrpc = Methods()


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
    await change_handle(ctx, await caller_account(ctx, req.auth.did), req.input["handle"])


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


@xrpc.procedure("com.atproto.identity.requestPlcOperationSignature", auth=access_full_or_takendown)
async def request_plc_operation_signature(req: XrpcRequest) -> None:
    ctx = ctx_of(req)
    account = await caller_account(ctx, req.auth.did)
    await email_tokens.mail_code(ctx, account, "plc_operation", mailer.plc_operation)


@xrpc.procedure("com.atproto.identity.signPlcOperation", auth=access_full_or_takendown)
async def sign_plc_operation(req: XrpcRequest) -> dict[str, Any]:
    ctx = ctx_of(req)
    did: str = req.auth.did
    token = req.input.get("token")
    if not token:
        raise InvalidRequest("email confirmation token required to sign PLC operations")
    await email_tokens.redeem(ctx, "plc_operation", did, token)
    try:
        return {"operation": await sign_update(ctx, did, req.input)}
    except IdentityError as exc:
        raise plc_failure(exc) from None


@xrpc.procedure("com.atproto.identity.submitPlcOperation", auth=access_full)
async def submit_plc_operation(req: XrpcRequest) -> None:
    ctx = ctx_of(req)
    account = await caller_account(ctx, req.auth.did)
    op = await check_incoming(ctx, account.did, req.input["operation"], account.handle)
    try:
        await ctx.plc.submit(account.did, op)
    except IdentityError as exc:
        raise plc_failure(exc) from None
    ctx.resolver.invalidate(account.did)
    if account.active:
        await ctx.sequencer.emit_identity(account.did, account.handle)

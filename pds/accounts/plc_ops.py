"""PLC operations the PDS makes for its accounts (plc-did-method-spec-v0.1.md,
pds-ACCOUNT_MIGRATION.md): handle updates signed with the PDS rotation key, operations signed for
an account leaving, and checks on operations an arriving account submits.
"""

from __future__ import annotations

from typing import Any

from atcore.errors import IdentityError, InvalidPlcOperation, PlcRequestError
from atcore.identity.plc import (
    PDS_SERVICE,
    PDS_SERVICE_TYPE,
    SIGNING_KEY_ID,
    Op,
    check_operation,
    op_cid,
    sign_operation,
    update_op,
)
from atcore.xrpc.errors import InvalidRequest, UpstreamFailure
from pds.context import AppContext


def plc_failure(exc: IdentityError) -> Exception:
    """The XRPC error for a failed PLC request: refused (400) or unreachable (502)."""
    if isinstance(exc, PlcRequestError):
        return InvalidRequest(f"PLC directory refused the operation: {exc}")
    return UpstreamFailure(f"PLC directory unavailable: {exc}")


async def _last_op(ctx: AppContext, did: str) -> tuple[Op, str]:
    last = await ctx.plc.get_last_op(did)
    return last, op_cid(last)


async def update_handle(ctx: AppContext, did: str, handle: str) -> None:
    """Point the DID's `alsoKnownAs` at the new handle (did:plc only; did:web is self-hosted)."""
    if not did.startswith("did:plc:"):
        return
    prev, prev_cid = await _last_op(ctx, did)
    op = sign_operation(update_op(prev, prev_cid, handle=handle), ctx.plc_rotation_key)
    await ctx.plc.submit(did, op)
    ctx.resolver.invalidate(did)


async def sign_update(ctx: AppContext, did: str, changes: dict[str, Any]) -> Op:
    """An operation on top of the DID's latest one with `changes` applied, signed by our key."""
    prev, prev_cid = await _last_op(ctx, did)
    if prev["type"] == "plc_tombstone":
        raise InvalidRequest("Did is tombstoned")
    op = update_op(prev, prev_cid)
    for name in ("rotationKeys", "alsoKnownAs", "verificationMethods", "services"):
        if changes.get(name) is not None:
            op[name] = changes[name]
    return sign_operation(op, ctx.plc_rotation_key)


async def check_incoming(ctx: AppContext, did: str, op: object, handle: str) -> Op:
    """Refuse an operation that would not make this PDS the account's working host."""
    try:
        checked = check_operation(op)
    except InvalidPlcOperation as exc:
        raise InvalidRequest(f"invalid PLC operation: {exc}") from None
    if checked["type"] != "plc_operation":
        raise InvalidRequest("only plc_operation operations can be submitted")
    if ctx.plc_rotation_key.public_key().did_key() not in checked["rotationKeys"]:
        raise InvalidRequest("Rotation keys do not include server's rotation key")
    pds = checked["services"].get(PDS_SERVICE)
    if pds != {"type": PDS_SERVICE_TYPE, "endpoint": ctx.config.public_url}:
        raise InvalidRequest("Incorrect endpoint on atproto_pds service")
    key = await ctx.actors.signing_key(did)
    if checked["verificationMethods"].get(SIGNING_KEY_ID) != key.public_key().did_key():
        raise InvalidRequest("Incorrect signing key")
    if f"at://{handle}" not in checked["alsoKnownAs"]:
        raise InvalidRequest("Incorrect handle in alsoKnownAs")
    return checked

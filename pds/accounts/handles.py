"""Which handles an account on this PDS may take (spec-handle.md; the reference PDS's rules).

A handle under one of PDS_SERVICE_HANDLE_DOMAINS is one label of 3-18 characters in front of
the domain and not reserved; any other handle must already resolve to the account's DID (the
owner proved control of the domain by DNS or HTTPS). A change of handle goes to the PLC first.
"""

from __future__ import annotations

from typing import Final

from atcore.errors import IdentityError, InvalidSyntax
from atcore.syntax.handle import is_disallowed_tld, parse_handle
from atcore.xrpc.errors import InvalidRequest
from pds.accounts.account import Account
from pds.accounts.plc_ops import plc_failure, update_handle
from pds.accounts.store import HandleTaken
from pds.context import AppContext

MIN_LABEL: Final = 3
MAX_LABEL: Final = 18
# Names people would take for the operator or the service itself.
RESERVED: Final = frozenset(
    {
        "abuse", "admin", "administrator", "api", "app", "atproto", "bsky", "help", "info",
        "localhost", "mail", "moderator", "mod", "official", "pds", "plc", "postmaster",
        "relay", "root", "security", "staff", "support", "system", "team", "webmaster", "www",
    }
)  # fmt: skip


def service_domain(ctx: AppContext, handle: str) -> str | None:
    """The service domain `handle` lives under, if any."""
    return next((d for d in ctx.config.handle_domains if handle.endswith(d)), None)


async def normalize_handle(ctx: AppContext, raw: str, did: str | None) -> str:
    """The lower-cased handle an account (with `did`, if known yet) may use; else InvalidRequest
    named InvalidHandle, HandleNotAvailable or UnsupportedDomain as the reference names them."""
    try:
        handle = parse_handle(raw)
    except InvalidSyntax as exc:
        raise InvalidRequest(str(exc), "InvalidHandle") from None
    if is_disallowed_tld(handle, allow_test=ctx.config.dev_mode):
        raise InvalidRequest("Handle TLD is invalid or disallowed", "InvalidHandle")
    domain = service_domain(ctx, handle)
    if domain is not None:
        front = handle[: -len(domain)]
        if "." in front:
            raise InvalidRequest("Invalid characters in handle", "InvalidHandle")
        if len(front) < MIN_LABEL:
            raise InvalidRequest("Handle too short", "InvalidHandle")
        if len(front) > MAX_LABEL:
            raise InvalidRequest("Handle too long", "InvalidHandle")
        if front in RESERVED:
            raise InvalidRequest("Reserved handle", "HandleNotAvailable")
        return handle
    if did is None:
        raise InvalidRequest("Not a supported handle domain", "UnsupportedDomain")
    if await ctx.resolver.resolve_handle(handle) != did:
        raise InvalidRequest("External handle did not resolve to DID", "InvalidHandle")
    return handle


async def change_handle(ctx: AppContext, account: Account, raw: str) -> str:
    """Give the account a new handle: checked, written to its DID at the PLC, stored, and
    announced with `#identity` if the account is active."""
    did = account.did
    handle = await normalize_handle(ctx, raw, did)
    taken = await ctx.accounts.by_handle(handle)
    # Updating to a taken handle is a bare InvalidRequest in the reference (identity.updateHandle
    # and admin.updateAccountHandle, 0.4.x); createAccount names it HandleNotAvailable.
    if taken is not None and taken.did != did:
        raise InvalidRequest(f"Handle already taken: {handle}")
    try:
        await update_handle(ctx, did, handle)
    except IdentityError as exc:
        raise plc_failure(exc) from None
    try:
        await ctx.accounts.set_handle(did, handle)
    except HandleTaken:
        raise InvalidRequest(f"Handle already taken: {handle}") from None
    if account.active:
        await ctx.sequencer.emit_identity(did, handle)
    return handle

"""Account creation: a new did:plc, or an existing DID moving here (spec-account.md,
pds-ACCOUNT_MIGRATION.md, plc-did-method-spec-v0.1.md).

The account row goes in first, so the unique handle, email and DID constraints decide races
before anything is registered; if a later step fails, what was made is removed again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from atcore.errors import InvalidKey
from atcore.identity.plc import did_for_genesis, genesis_op, sign_operation
from atcore.keys import generate_k256, parse_did_key
from atcore.xrpc.errors import InvalidRequest
from pds.accounts.account import Account
from pds.accounts.email_address import is_valid_email
from pds.accounts.handles import normalize_handle
from pds.accounts.passwords import MAX_PASSWORD_BYTES, hash_password
from pds.accounts.store import AccountExists, EmailTaken, HandleTaken, InviteCodeUnusable
from pds.context import AppContext
from pds.repo_writer import init_repo

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NewAccount:
    """What createAccount was asked for, before checks."""

    handle: str
    email: str | None
    password: str | None
    invite_code: str | None = None
    did: str | None = None  # an existing DID (migration), already proven by a service token
    recovery_key: str | None = None


def normalize_email(email: str | None) -> str:
    if not email:
        raise InvalidRequest("Email is required")
    if not is_valid_email(email):
        raise InvalidRequest("This email address is not supported, please use a different email.")
    return email.lower()


def check_password(password: str | None) -> str:
    if not password:
        raise InvalidRequest("Password is required", "InvalidPassword")
    if len(password.encode()) > MAX_PASSWORD_BYTES:
        raise InvalidRequest(
            f"Password is longer than {MAX_PASSWORD_BYTES} bytes", "InvalidPassword"
        )
    return password


def _rotation_keys(ctx: AppContext, recovery_key: str | None) -> list[str]:
    own = ctx.plc_rotation_key.public_key().did_key()
    if recovery_key is None:
        return [own]
    try:
        recovery = parse_did_key(recovery_key).did_key()
    except InvalidKey as exc:
        raise InvalidRequest(f"recoveryKey is not a did:key: {exc}") from None
    # The reference PDS would list the key twice, an operation the PLC refuses (no duplicate
    # rotation keys): say so here, before any DID is made.
    if recovery == own:
        raise InvalidRequest("recoveryKey is this server's own rotation key")
    return [recovery_key, own]


async def create_account(ctx: AppContext, new: NewAccount) -> Account:
    """Register the DID (unless migrating), the account, its store and an empty repo, then
    announce it. A migrating account starts deactivated; its #identity and #account events
    wait for activation."""
    handle = await normalize_handle(ctx, new.handle, new.did)
    email = normalize_email(new.email)
    password = check_password(new.password)
    if ctx.config.invite_required and not new.invite_code:
        raise InvalidRequest("No invite code provided", "InvalidInviteCode")
    signing_key = generate_k256()
    genesis = None
    did = new.did
    if did is None:
        unsigned = genesis_op(
            signing_key=signing_key.public_key().did_key(),
            rotation_keys=_rotation_keys(ctx, new.recovery_key),
            handle=handle,
            pds=ctx.config.public_url,
        )
        genesis = sign_operation(unsigned, ctx.plc_rotation_key)
        did = did_for_genesis(genesis)
    migrating = new.did is not None
    try:
        account = await ctx.accounts.create(
            did,
            handle,
            email,
            await hash_password(password),
            deactivated=migrating,
            invite_code=new.invite_code if ctx.config.invite_required else None,
        )
    except HandleTaken:
        raise InvalidRequest(f"Handle already taken: {handle}", "HandleNotAvailable") from None
    except EmailTaken:
        raise InvalidRequest(f"Email already taken: {email}") from None
    except AccountExists:
        raise InvalidRequest(f"Account already exists: {did}") from None
    except InviteCodeUnusable:
        raise InvalidRequest("Provided invite code not available", "InvalidInviteCode") from None
    try:
        if genesis is not None:
            await ctx.plc.submit(did, genesis)
        await ctx.actors.create(did, signing_key)
        # The reference announces identity and status before the first commit.
        if not migrating:
            await ctx.sequencer.emit_identity(did, handle)
            await ctx.sequencer.emit_account(did, True, None)
        await init_repo(ctx, did)
    except BaseException:
        log.warning("creating the account %s failed; removing it", did)
        await ctx.actors.destroy(did)
        await ctx.accounts.delete(did)
        raise
    return account

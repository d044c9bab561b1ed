"""Session tokens and session views (com.atproto.server.createSession & co., spec-xrpc.md).

An access token lives two hours, a refresh token 90 days; both are HS256 JWTs with the shape
the reference PDS issues, so clients that peek at `exp` or `scope` behave the same.
"""

from __future__ import annotations

import secrets
import time
from typing import Any, Final

from atcore.errors import IdentityError
from atcore.identity.plc_data import did_document
from atcore.xrpc.errors import InvalidRequest
from pds.accounts.store import Account
from pds.auth import ACCESS_SCOPE, ACCESS_TYP, REFRESH_SCOPE, REFRESH_TYP
from pds.context import AppContext
from pds.jwt import encode_hs256

ACCESS_SECONDS: Final = 2 * 60 * 60
REFRESH_SECONDS: Final = 90 * 24 * 60 * 60


def _access_token(ctx: AppContext, did: str, now: int) -> str:
    claims = {
        "scope": ACCESS_SCOPE,
        "sub": did,
        "aud": ctx.service_did,
        "iat": now,
        "exp": now + ACCESS_SECONDS,
    }
    return encode_hs256(claims, ctx.config.jwt_secret, ACCESS_TYP)


def _refresh_token(ctx: AppContext, did: str, jti: str, now: int) -> str:
    claims = {
        "scope": REFRESH_SCOPE,
        "sub": did,
        "aud": ctx.service_did,
        "jti": jti,
        "iat": now,
        "exp": now + REFRESH_SECONDS,
    }
    return encode_hs256(claims, ctx.config.jwt_secret, REFRESH_TYP)


def _new_jti() -> str:
    return secrets.token_urlsafe(32)


async def create_tokens(ctx: AppContext, did: str) -> dict[str, str]:
    """A fresh access/refresh pair, the refresh token recorded so it can be rotated once."""
    now, jti = int(time.time()), _new_jti()
    await ctx.accounts.tokens.add_refresh(jti, did, now + REFRESH_SECONDS)
    return {
        "accessJwt": _access_token(ctx, did, now),
        "refreshJwt": _refresh_token(ctx, did, jti, now),
    }


async def rotate_tokens(ctx: AppContext, did: str, old_jti: str) -> dict[str, str]:
    """Exchange the refresh token `old_jti` for a new pair (RefreshRefused if it is spent)."""
    now, jti = int(time.time()), _new_jti()
    await ctx.accounts.tokens.rotate_refresh(old_jti, did, jti, now + REFRESH_SECONDS)
    return {
        "accessJwt": _access_token(ctx, did, now),
        "refreshJwt": _refresh_token(ctx, did, jti, now),
    }


async def caller_account(ctx: AppContext, did: str) -> Account:
    """The authenticated caller's account; gone (deleted since the token was issued) is a 400."""
    account = await ctx.accounts.by_did(did)
    if account is None:
        raise InvalidRequest("Could not find account", "AccountNotFound")
    return account


async def did_doc(ctx: AppContext, did: str) -> dict[str, Any] | None:
    """The account's DID document as clients see it (did:plc from our directory), if reachable."""
    if not did.startswith("did:plc:"):
        return None
    try:
        return did_document(did, await ctx.plc.get_document_data(did))
    except (IdentityError, KeyError, TypeError, AttributeError):
        return None


async def session_view(ctx: AppContext, account: Account, **extra: Any) -> dict[str, Any]:
    """The body of createSession/getSession/refreshSession for `account`."""
    view: dict[str, Any] = {
        **extra,
        "did": account.did,
        "handle": account.handle,
        "active": account.active,
    }
    if account.email is not None:
        view["email"] = account.email
        view["emailConfirmed"] = account.email_confirmed_at is not None
        view["emailAuthFactor"] = False
    if account.status is not None:
        view["status"] = account.status
    doc = await did_doc(ctx, account.did)
    if doc is not None:
        view["didDoc"] = doc
    return view

"""Session tokens and session views (com.atproto.server.createSession & co., spec-xrpc.md).

An access token lives two hours, a refresh token 90 days; both are HS256 JWTs with the shape
the reference PDS issues, so clients that peek at `exp` or `scope` behave the same.
"""

from __future__ import annotations

import secrets
import time
from typing import Any, Final

from atcore.jwt import encode_es, encode_hs256
from atcore.xrpc.errors import InvalidRequest
from pds.accounts.account import Account
from pds.accounts.app_passwords import AppPassword
from pds.accounts.tokens import RefreshRefused
from pds.auth import (
    ACCESS_SCOPE,
    ACCESS_TYP,
    APP_PASS_PRIVILEGED_SCOPE,
    APP_PASS_SCOPE,
    REFRESH_SCOPE,
    REFRESH_TYP,
    TAKENDOWN_SCOPE,
)
from pds.context import AppContext

ACCESS_SECONDS: Final = 2 * 60 * 60
REFRESH_SECONDS: Final = 90 * 24 * 60 * 60
SERVICE_JWT_SECONDS: Final = 60


def _scope(app_password: AppPassword | None) -> str:
    if app_password is None:
        return ACCESS_SCOPE
    return APP_PASS_PRIVILEGED_SCOPE if app_password.privileged else APP_PASS_SCOPE


def _access_token(ctx: AppContext, did: str, now: int, scope: str) -> str:
    claims = {
        "scope": scope,
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


async def create_tokens(
    ctx: AppContext, did: str, app_password: AppPassword | None = None, *, takendown: bool = False
) -> dict[str, str]:
    """A fresh access/refresh pair, the refresh token recorded so it can be rotated once; a
    session opened with an app password gets that password's narrower scope, one of a
    taken-down account the takendown scope."""
    now, jti = int(time.time()), _new_jti()
    name = None if app_password is None else app_password.name
    await ctx.accounts.tokens.add_refresh(jti, did, now + REFRESH_SECONDS, name)
    scope = TAKENDOWN_SCOPE if takendown else _scope(app_password)
    return {
        "accessJwt": _access_token(ctx, did, now, scope),
        "refreshJwt": _refresh_token(ctx, did, jti, now),
    }


async def rotate_tokens(ctx: AppContext, did: str, old_jti: str) -> dict[str, str]:
    """Exchange the refresh token `old_jti` for a new pair (RefreshRefused if it is spent)."""
    now, jti = int(time.time()), _new_jti()
    name = await ctx.accounts.tokens.rotate_refresh(old_jti, did, jti, now + REFRESH_SECONDS)
    app_password = None
    if name is not None:
        app_password = await ctx.accounts.app_passwords.get(did, name)
        if app_password is None:
            raise RefreshRefused("Token has been revoked")
    return {
        "accessJwt": _access_token(ctx, did, now, _scope(app_password)),
        "refreshJwt": _refresh_token(ctx, did, jti, now),
    }


async def service_jwt(
    ctx: AppContext, iss: str, aud: str, lxm: str | None, exp: int | None = None
) -> str:
    """An inter-service token (bskydocs-service-auth.md) signed with the account's key."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iat": now,
        "iss": iss,
        "aud": aud,
        "exp": now + SERVICE_JWT_SECONDS if exp is None else exp,
    }
    if lxm is not None:
        claims["lxm"] = lxm
    claims["jti"] = secrets.token_hex(16)
    return encode_es(claims, await ctx.actors.signing_key(iss))


async def caller_account(ctx: AppContext, did: str) -> Account:
    """The authenticated caller's account; gone (deleted since the token was issued) is a 400."""
    account = await ctx.accounts.by_did(did)
    if account is None:
        raise InvalidRequest("Could not find account", "AccountNotFound")
    return account


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
    doc = await ctx.did_docs.get(account.did)
    if doc is not None:
        view["didDoc"] = doc
    return view

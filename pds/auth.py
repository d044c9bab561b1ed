"""Request authentication for the PDS's XRPC methods (spec-xrpc.md "Authentication",
bskydocs-service-auth.md).

Session tokens are HS256 JWTs under PDS_JWT_SECRET as the reference PDS issues them; failures
answer as the reference does: no credentials -> 401 AuthMissing, a bad or expired token -> 400
InvalidToken / ExpiredToken (clients refresh their session on ExpiredToken).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Final

from starlette.requests import HTTPConnection

from atcore.jwt import Jwt, JwtError
from atcore.service_auth import BadJwt, verify_service_jwt
from atcore.xrpc.basic_auth import basic_credentials
from atcore.xrpc.errors import AuthRequired, InvalidRequest
from pds.context import AppContext, ctx_of

ACCESS_SCOPE: Final = "com.atproto.access"
REFRESH_SCOPE: Final = "com.atproto.refresh"
APP_PASS_SCOPE: Final = "com.atproto.appPass"
APP_PASS_PRIVILEGED_SCOPE: Final = "com.atproto.appPassPrivileged"
# App passwords get narrower scopes. Most methods accept all three ("standard"); direct
# messages and the like want a privileged one; managing the account's credentials, email and
# app passwords needs the account password itself ("full").
ACCESS_SCOPES: Final = frozenset({ACCESS_SCOPE, APP_PASS_SCOPE, APP_PASS_PRIVILEGED_SCOPE})
PRIVILEGED_SCOPES: Final = frozenset({ACCESS_SCOPE, APP_PASS_PRIVILEGED_SCOPE})
FULL_SCOPES: Final = frozenset({ACCESS_SCOPE})
# A taken-down account logging in with `allowTakendown` gets only this scope, which the few
# methods a taken-down user may still call accept in addition to theirs (the `_or_takendown`
# verifiers): reading preferences, service tokens, an appeal (createReport through the proxy),
# deactivating, and the PLC operations that move the identity elsewhere. No writes.
TAKENDOWN_SCOPE: Final = "com.atproto.takendown"
_ACCESS_OR_TAKENDOWN: Final = ACCESS_SCOPES | {TAKENDOWN_SCOPE}
_FULL_OR_TAKENDOWN: Final = FULL_SCOPES | {TAKENDOWN_SCOPE}
# Methods only a privileged session may reach through the proxy or a service token: direct
# messages and account creation elsewhere (the reference PDS's list).
PRIVILEGED_METHODS: Final = frozenset(
    {
        "chat.bsky.actor.deleteAccount",
        "chat.bsky.actor.exportAccountData",
        "chat.bsky.convo.deleteMessageForSelf",
        "chat.bsky.convo.getConvo",
        "chat.bsky.convo.getConvoForMembers",
        "chat.bsky.convo.getLog",
        "chat.bsky.convo.getMessages",
        "chat.bsky.convo.leaveConvo",
        "chat.bsky.convo.listConvos",
        "chat.bsky.convo.muteConvo",
        "chat.bsky.convo.sendMessage",
        "chat.bsky.convo.sendMessageBatch",
        "chat.bsky.convo.unmuteConvo",
        "chat.bsky.convo.updateRead",
        "com.atproto.server.createAccount",
    }
)
# Account management that must be called on the PDS itself: never proxied, never granted to
# another service by a service token.
PROTECTED_METHODS: Final = frozenset(
    {
        "com.atproto.admin.sendEmail",
        "com.atproto.identity.requestPlcOperationSignature",
        "com.atproto.identity.signPlcOperation",
        "com.atproto.identity.updateHandle",
        "com.atproto.server.activateAccount",
        "com.atproto.server.confirmEmail",
        "com.atproto.server.createAppPassword",
        "com.atproto.server.deactivateAccount",
        "com.atproto.server.getAccountInviteCodes",
        "com.atproto.server.listAppPasswords",
        "com.atproto.server.requestAccountDelete",
        "com.atproto.server.requestEmailConfirmation",
        "com.atproto.server.requestEmailUpdate",
        "com.atproto.server.revokeAppPassword",
        "com.atproto.server.updateEmail",
    }
)
ACCESS_TYP: Final = "at+jwt"
REFRESH_TYP: Final = "refresh+jwt"
ADMIN_USER: Final = "admin"
# Service tokens are meant to be short-lived; refuse ones claiming a longer life than this.
MAX_SERVICE_TOKEN_SECONDS: Final = 3600


@dataclass(frozen=True)
class AuthContext:
    """Who is calling: `did` (empty for the admin), the token's `scope`, and for refresh
    tokens their `token_id` (the `jti`)."""

    did: str
    scope: str
    token_id: str | None = None

    @property
    def privileged(self) -> bool:
        """Whether the session may reach privileged methods (not a plain app password)."""
        return self.scope in PRIVILEGED_SCOPES


def bearer_token(conn: HTTPConnection) -> str | None:
    header = conn.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthRequired("Unexpected authorization type", "InvalidToken")
    return token.strip()


def _session_token(ctx: AppContext, token: str, typ: str, scopes: frozenset[str]) -> Jwt:
    try:
        jwt = ctx.session_tokens.verify(token)
    except JwtError as exc:
        name = "ExpiredToken" if exc.expired else "InvalidToken"
        message = str(exc) if exc.expired else "Token could not be verified"
        raise InvalidRequest(message, name) from None
    claims = jwt.payload
    # Older reference tokens carried `typ: JWT`; the scope is what tells the kinds apart.
    if jwt.header.get("typ") not in (typ, "JWT") or claims.get("scope") not in scopes:
        raise InvalidRequest("Bad token scope", "InvalidToken")
    if claims.get("aud") != ctx.service_did or not isinstance(claims.get("sub"), str):
        raise InvalidRequest("Bad token aud or sub", "InvalidToken")
    return jwt


def _access(conn: HTTPConnection, scopes: frozenset[str]) -> AuthContext:
    token = bearer_token(conn)
    if token is None:
        raise AuthRequired(error="AuthMissing")
    jwt = _session_token(ctx_of(conn), token, ACCESS_TYP, scopes)
    return AuthContext(jwt.payload["sub"], jwt.payload["scope"])


async def access_auth(conn: HTTPConnection) -> AuthContext:
    """An account's access token (Bearer); the methods that change or read one's own data."""
    return _access(conn, ACCESS_SCOPES)


async def access_or_takendown(conn: HTTPConnection) -> AuthContext:
    """Like `access_auth`, also accepting a taken-down account's session."""
    return _access(conn, _ACCESS_OR_TAKENDOWN)


async def access_full(conn: HTTPConnection) -> AuthContext:
    """An access token from the account password (no app password), of an account that is not
    taken down: managing credentials, email, app passwords and the account itself."""
    auth = _access(conn, FULL_SCOPES)
    account = await ctx_of(conn).accounts.by_did(auth.did)
    if account is not None and account.takedown_ref is not None:
        raise AuthRequired("Account has been taken down", "AccountTakedown")
    return auth


async def access_full_or_takendown(conn: HTTPConnection) -> AuthContext:
    """An access token from the account password, or a taken-down account's session: what a
    taken-down user may still do to the account (deactivate it, move its identity away)."""
    return _access(conn, _FULL_OR_TAKENDOWN)


async def refresh_auth(conn: HTTPConnection) -> AuthContext:
    """A refresh token (Bearer): refreshSession and deleteSession."""
    token = bearer_token(conn)
    if token is None:
        raise AuthRequired(error="AuthMissing")
    jwt = _session_token(ctx_of(conn), token, REFRESH_TYP, frozenset({REFRESH_SCOPE}))
    jti = jwt.payload.get("jti")
    if not isinstance(jti, str):
        raise InvalidRequest("Refresh token has no jti", "InvalidToken")
    return AuthContext(jwt.payload["sub"], REFRESH_SCOPE, jti)


async def admin_auth(conn: HTTPConnection) -> AuthContext:
    """HTTP Basic `admin:PDS_ADMIN_PASSWORD`."""
    credentials = basic_credentials(conn)
    if credentials is None:
        raise AuthRequired()
    user, password = credentials
    expected = ctx_of(conn).config.admin_password.encode()
    if user != ADMIN_USER or not hmac.compare_digest(password.encode(), expected):
        raise AuthRequired("Invalid admin credentials")
    return AuthContext("", "admin")


async def verify_service_token(ctx: AppContext, token: str, lxm: str) -> str:
    """The issuing DID of an inter-service token addressed to us for method `lxm`."""
    claims = await verify_service_jwt(
        token, audience=ctx.service_did, lxm=lxm, documents=ctx.resolver
    )
    if claims.iat is not None and claims.exp - claims.iat > MAX_SERVICE_TOKEN_SECONDS:
        raise BadJwt("jwt lifetime is too long")
    return claims.did

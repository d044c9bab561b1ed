"""Verifying inter-service auth tokens (bskydocs-service-auth.md; spec-xrpc.md, "Inter-Service
Authentication").

A service (PDS, appview, feed generator, labeler) receives a JWT signed by a user's or service's
atproto key: `iss` the signer's DID (optionally `did#service_id`), `aud` the receiving service's
DID, `exp` its expiry, `lxm` the method it may call. The checks, their order and their error
names follow the reference's `verifyJwt` (xrpc-server auth.ts): structure, `typ`, claims'
types, expiry (no leeway: a token is good up to and including its `exp` second), audience,
method, issuer syntax, then the signature against the issuer's current `#atproto` key. A
signature that does not match is tried once more after a forced refresh of the issuer's DID
document, in case the key was just rotated. Every failure is a 401 with the reference's name.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Final, Protocol, TypeGuard

from atcore.errors import IdentityError, InvalidSyntax
from atcore.identity.diddoc import DidDocument
from atcore.jwt import Jwt, JwtError, decode
from atcore.keys import PublicKey
from atcore.syntax.did import Did, is_valid_did
from atcore.xrpc.errors import AuthRequired

# Token types that are not service tokens: OAuth access tokens, the PDS's own refresh tokens,
# DPoP proofs (RFC 9068, RFC 9449); refused as the reference does.
REFUSED_TYPES: Final = frozenset({"at+jwt", "refresh+jwt", "dpop+jwt"})


class BadJwt(AuthRequired):
    """The token is not a well-formed service JWT."""

    default_error = "BadJwt"


class BadJwtType(AuthRequired):
    default_error = "BadJwtType"


class JwtExpired(AuthRequired):
    default_error = "JwtExpired"


class BadJwtAudience(AuthRequired):
    default_error = "BadJwtAudience"


class BadJwtLexiconMethod(AuthRequired):
    default_error = "BadJwtLexiconMethod"


class BadJwtIss(AuthRequired):
    """`iss` is not a DID, or its document or key cannot be had."""

    default_error = "BadJwtIss"


class BadJwtSignature(AuthRequired):
    default_error = "BadJwtSignature"


class DidDocuments(Protocol):
    """Where issuers' keys come from: atcore.identity.resolver.IdentityResolver fits."""

    async def resolve_did(self, did: str) -> DidDocument: ...

    async def refresh(self, did: str) -> DidDocument: ...


@dataclass(frozen=True)
class ServiceToken:
    """A verified token: `iss` as sent, `did` its DID part, and the other claims."""

    iss: str
    did: Did
    aud: str
    exp: int | float
    lxm: str | None
    iat: int | float | None


async def verify_service_jwt(
    token: str,
    *,
    audience: str | None,
    lxm: str | None,
    documents: DidDocuments,
    now: float | None = None,
) -> ServiceToken:
    """Verify `token` for a call to `lxm` on the service `audience`.

    `audience=None` skips the audience check and `lxm=None` the method check, as in the
    reference (for callers that judge those themselves).
    """
    jwt, claims = _parse(token)
    _check_claims(claims, audience, lxm, now)
    await _check_signature(jwt, claims.did, documents)
    return claims


class ServiceTokens:
    """verify_service_jwt against one source of DID documents, remembering the latest `size`
    tokens whose signature it checked and the issuer's key that matched: a PDS mints one token
    and repeats it until it expires, and a repeat then costs a look in the document cache
    instead of an ECDSA verification. The claims (expiry, audience, method) are checked on
    every call, and a token is verified afresh when the issuer's current key (as `documents`
    now serves it) is no longer the one that matched."""

    def __init__(self, documents: DidDocuments, size: int = 4096) -> None:
        self.documents = documents
        self.size = size
        self._checked: OrderedDict[str, tuple[Jwt, ServiceToken, PublicKey]] = OrderedDict()

    async def verify(
        self, token: str, *, audience: str | None, lxm: str | None, now: float | None = None
    ) -> ServiceToken:
        checked = self._checked.get(token)
        if checked is None:
            jwt, claims = _parse(token)
        else:
            jwt, claims, key = checked
        try:
            _check_claims(claims, audience, lxm, now)
        except JwtExpired:
            self._checked.pop(token, None)
            raise
        if checked is not None:
            current = (await _document(self.documents.resolve_did, claims.did)).signing_key
            if current == key:
                self._checked.move_to_end(token)
                return claims
        self._checked[token] = (
            jwt,
            claims,
            await _check_signature(jwt, claims.did, self.documents),
        )
        self._checked.move_to_end(token)
        if len(self._checked) > self.size:
            self._checked.popitem(last=False)
        return claims


def _parse(token: str) -> tuple[Jwt, ServiceToken]:
    try:
        jwt = decode(token)
    except JwtError as exc:
        raise BadJwt(f"poorly formatted jwt: {exc}") from None
    if not isinstance(jwt.header.get("alg"), str):
        raise BadJwt("poorly formatted jwt: no alg")
    typ = jwt.header.get("typ")
    if typ in REFUSED_TYPES:
        raise BadJwtType(f"Invalid jwt type {typ!r}")
    return jwt, _claims(jwt)


def _check_claims(
    claims: ServiceToken, audience: str | None, lxm: str | None, now: float | None
) -> None:
    if (time.time() if now is None else now) > claims.exp:
        raise JwtExpired("jwt expired")
    if audience is not None and claims.aud != audience:
        raise BadJwtAudience("jwt audience does not match service did")
    if lxm is not None and claims.lxm != lxm:
        missing = "missing" if claims.lxm is None else "bad"
        raise BadJwtLexiconMethod(f'{missing} jwt lexicon method ("lxm"). must match: {lxm}')


def _claims(jwt: Jwt) -> ServiceToken:
    payload = jwt.payload
    iss, aud, exp = payload.get("iss"), payload.get("aud"), payload.get("exp")
    lxm, iat = payload.get("lxm"), payload.get("iat")
    if not isinstance(iss, str) or not isinstance(aud, str) or not _is_number(exp):
        raise BadJwt("poorly formatted jwt: iss, aud and exp are required")
    if lxm is not None and not isinstance(lxm, str):
        raise BadJwt("poorly formatted jwt: lxm is not a string")
    if not (iat is None or _is_number(iat)):
        raise BadJwt("poorly formatted jwt: iat is not a number")
    did, sep, fragment = iss.partition("#")
    if not is_valid_did(did) or (sep and (not fragment or "#" in fragment)):
        raise BadJwtIss("jwt iss is not a valid did")
    return ServiceToken(iss, Did(did), aud, exp, lxm, iat)


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


async def _check_signature(jwt: Jwt, did: Did, documents: DidDocuments) -> PublicKey:
    """The issuer's key that signed `jwt`."""
    key = (await _document(documents.resolve_did, did)).signing_key
    if key is not None and _signed_by(jwt, key):
        return key
    # The key may have just been rotated: look again once, bypassing the cache.
    fresh = (await _document(documents.refresh, did)).signing_key
    if fresh is None:
        raise BadJwtIss(f"{did} has no #atproto key")
    if fresh == key or not _signed_by(jwt, fresh):
        raise BadJwtSignature("jwt signature does not match jwt issuer")
    return fresh


async def _document(fetch: _Fetch, did: Did) -> DidDocument:
    try:
        return await fetch(did)
    except (IdentityError, InvalidSyntax) as exc:
        raise BadJwtIss(f"could not resolve the jwt issuer: {exc}") from None


class _Fetch(Protocol):
    async def __call__(self, did: str) -> DidDocument: ...


def _signed_by(jwt: Jwt, key: PublicKey) -> bool:
    try:
        jwt.verify_key(key)
    except JwtError:
        return False
    return True

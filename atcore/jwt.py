"""Compact JWTs as atproto services use them (RFC 7519; bskydocs-service-auth.md; spec-xrpc.md).

Session tokens are HS256 under a server's secret; inter-service tokens are ES256K (or ES256)
signed by an account's atproto key, the signature being the 64-byte r||s in base64url. Only
these algorithms exist here, so a token naming any other (`none` included) is refused.

Tokens arrive from anyone, so decoding is bounded: the whole token's length, the alphabet of
each segment, strict UTF-8, the JSON nesting depth (Python's decoder recurses, and a payload of
a few thousand `[` would otherwise exhaust the stack) and lone surrogates. Every failure is a
JwtError.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Final

from atcore.keys import PrivateKey, PublicKey

# A session token is ~300 bytes and a service token ~450; anything far larger is not a token.
MAX_TOKEN_LENGTH: Final = 4096
# Claims and headers are flat objects (OAuth's `cnf`/`jwk` add one level); allow a little more.
MAX_DEPTH: Final = 8
_SEGMENT: Final = re.compile(r"[A-Za-z0-9_-]*")


class JwtError(ValueError):
    """A token is malformed, badly signed or expired; `expired` tells the last one apart."""

    def __init__(self, message: str, *, expired: bool = False) -> None:
        super().__init__(message)
        self.expired = expired


@dataclass(frozen=True)
class Jwt:
    """A decoded but not yet verified token."""

    header: dict[str, Any]
    payload: dict[str, Any]
    signing_input: bytes
    signature: bytes

    def verify_key(self, key: PublicKey) -> None:
        """Check the ES256K/ES256 signature against `key` (high-S accepted, as for JWTs the
        reference does: only the signer's key matters here, not the signature's encoding)."""
        if self.header.get("alg") != key.jwt_alg:
            raise JwtError(f"token alg {str(self.header.get('alg'))[:20]!r} does not match the key")
        if not key.verify(self.signing_input, self.signature, allow_high_s=True):
            raise JwtError("jwt signature does not match jwt issuer")

    def check_expiry(self, now: float | None = None) -> None:
        exp = self.payload.get("exp")
        if not isinstance(exp, int) or isinstance(exp, bool):
            raise JwtError("token has no integer exp")
        if exp <= (time.time() if now is None else now):
            raise JwtError("Token has expired", expired=True)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes:
    if _SEGMENT.fullmatch(text) is None or len(text) % 4 == 1:
        raise JwtError("jwt segment is not unpadded base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _json_segment(value: dict[str, Any]) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def _too_deep(text: str) -> bool:
    """Whether JSON `text` nests arrays and objects deeper than MAX_DEPTH (brackets inside
    strings do not count). Claims hold a bracket or two, so the count usually settles it;
    otherwise one linear pass (a regex for strings would be quadratic on `"\\"\\"...`)."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return False
    depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return True
        elif char in "]}":
            depth -= 1
    return False


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _object(segment: str, what: str) -> dict[str, Any]:
    try:
        text = _unb64url(segment).decode("utf-8")
        if _too_deep(text):
            raise JwtError(f"jwt {what} nests deeper than {MAX_DEPTH}")
        value = json.loads(text, parse_constant=_refuse_constant)
        # A lone surrogate ("\ud800") decodes fine and breaks whoever stores the claim later;
        # only an escape can carry one (UTF-8 cannot).
        if "\\ud" in text.lower():
            json.dumps(value, ensure_ascii=False).encode("utf-8")
    except JwtError:
        raise
    except ValueError:  # UnicodeDecodeError, JSONDecodeError, NaN or Infinity
        raise JwtError(f"jwt {what} is not JSON") from None
    if not isinstance(value, dict):
        raise JwtError(f"jwt {what} is not a JSON object")
    return value


def decode(token: str) -> Jwt:
    """Split and parse a compact JWT without checking its signature."""
    if len(token) > MAX_TOKEN_LENGTH:
        raise JwtError("token is too long")
    parts = token.split(".")
    if len(parts) != 3:
        raise JwtError("token is not a compact JWT")
    header = _object(parts[0], "header")
    payload = _object(parts[1], "payload")
    signature = _unb64url(parts[2])
    return Jwt(header, payload, f"{parts[0]}.{parts[1]}".encode("ascii"), signature)


def _hs256(signing_input: bytes, secret: str) -> bytes:
    return hmac.new(secret.encode(), signing_input, hashlib.sha256).digest()


def encode_hs256(payload: dict[str, Any], secret: str, typ: str) -> str:
    signing_input = f"{_json_segment({'typ': typ, 'alg': 'HS256'})}.{_json_segment(payload)}"
    return f"{signing_input}.{b64url(_hs256(signing_input.encode(), secret))}"


def verify_hs256(token: str, secret: str, *, now: float | None = None) -> Jwt:
    """The decoded token if its HS256 MAC is right and it has not expired."""
    jwt = decode(token)
    if jwt.header.get("alg") != "HS256":
        raise JwtError("token is not HS256")
    if not hmac.compare_digest(_hs256(jwt.signing_input, secret), jwt.signature):
        raise JwtError("Token could not be verified")
    jwt.check_expiry(now)
    return jwt


class Hs256Tokens:
    """verify_hs256 under one secret, remembering the tokens whose MAC and claims it has checked
    (the latest `size`): a token never changes, so a repeat costs a lookup instead of a MAC and
    two JSON parses. Expiry is checked on every call; whatever else can end a session (its
    revocation, the account's state) is for the caller to check, as without this."""

    def __init__(self, secret: str, size: int = 4096) -> None:
        self.secret = secret
        self.size = size
        self._checked: OrderedDict[str, Jwt] = OrderedDict()

    def verify(self, token: str, *, now: float | None = None) -> Jwt:
        jwt = self._checked.get(token)
        if jwt is None:
            jwt = verify_hs256(token, self.secret, now=now)
            self._checked[token] = jwt
            if len(self._checked) > self.size:
                self._checked.popitem(last=False)
            return jwt
        try:
            jwt.check_expiry(now)
        except JwtError:
            del self._checked[token]
            raise
        self._checked.move_to_end(token)
        return jwt


def encode_es(payload: dict[str, Any], key: PrivateKey) -> str:
    """A token signed by `key` (ES256K for K-256, ES256 for P-256), `typ` JWT."""
    header = {"typ": "JWT", "alg": key.public_key().jwt_alg}
    signing_input = f"{_json_segment(header)}.{_json_segment(payload)}"
    return f"{signing_input}.{b64url(key.sign(signing_input.encode()))}"

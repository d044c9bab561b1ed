"""Compact JWTs as the PDS uses them (RFC 7519; bskydocs-service-auth.md; spec-xrpc.md).

Session tokens are HS256 under the server's secret; inter-service tokens are ES256K (or ES256)
signed by an account's atproto key, the signature being the 64-byte r||s in base64url. Only
these algorithms exist here, so a token naming any other (`none` included) is refused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any, Final

from atcore.jwt import ES_ALG, b64url, json_segment
from atcore.keys import PublicKey

# A session token is ~300 bytes; anything far larger is not ours.
MAX_TOKEN_LENGTH: Final = 4096


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
        """Check the ES256K/ES256 signature against `key`."""
        if self.header.get("alg") != ES_ALG[key.curve]:
            raise JwtError(f"token alg {self.header.get('alg')!r} does not match the key")
        if not key.verify(self.signing_input, self.signature):
            raise JwtError("jwt signature does not match jwt issuer")

    def check_expiry(self, now: float | None = None) -> None:
        exp = self.payload.get("exp")
        if not isinstance(exp, int) or isinstance(exp, bool):
            raise JwtError("token has no integer exp")
        if exp <= (time.time() if now is None else now):
            raise JwtError("Token has expired", expired=True)


def _unb64url(text: str) -> bytes:
    if "=" in text:
        raise JwtError("jwt segments are unpadded base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise JwtError("jwt segment is not base64url") from None


def _object(segment: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(_unb64url(segment))
    except (UnicodeDecodeError, json.JSONDecodeError):
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
    signing_input = f"{parts[0]}.{parts[1]}".encode("ascii", errors="replace")
    return Jwt(header, payload, signing_input, _unb64url(parts[2]))


def _hs256(signing_input: bytes, secret: str) -> bytes:
    return hmac.new(secret.encode(), signing_input, hashlib.sha256).digest()


def encode_hs256(payload: dict[str, Any], secret: str, typ: str) -> str:
    signing_input = f"{json_segment({'typ': typ, 'alg': 'HS256'})}.{json_segment(payload)}"
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

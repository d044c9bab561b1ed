"""Service-auth JWTs (bskydocs-service-auth.md) for fuzzing the appview: a valid one for an
indexed account and method, and the near misses a hostile client sends (forged, expired, for
another audience or method, from an issuer that cannot be resolved)."""

from __future__ import annotations

import time
from typing import Any

from atcore.jwt import encode_es
from atcore.keys import PrivateKey, generate_k256

# Issuers whose DID documents cannot be had: unknown to the PLC, an unreachable did:web.
UNRESOLVABLE = ("did:plc:aaaaaaaaaaaaaaaaaaaaaaaa", "did:web:localhost%3A1")


class ServiceTokens:
    """Tokens from `did` (signing with `key`) for a service whose DID is `audience`."""

    def __init__(self, did: str, key: PrivateKey, audience: str) -> None:
        self.did = did
        self.key = key
        self.audience = audience
        self.stranger = generate_k256()

    def _token(self, method: str, key: PrivateKey | None = None, **claims: Any) -> bytes:
        now = int(time.time())
        payload = {"iss": self.did, "aud": self.audience, "exp": now + 60, "iat": now}
        payload["lxm"] = method
        payload.update(claims)
        payload = {k: v for k, v in payload.items() if v is not None}
        return b"Bearer " + encode_es(payload, key or self.key).encode()

    def for_method(self, method: str) -> list[bytes]:
        """A valid token for `method` (twice: it should be drawn often), and its near misses."""
        now = int(time.time())
        valid = self._token(method)
        return [
            valid,
            valid,
            self._token(method, aud=self.audience + "#bsky_appview"),
            self._token(method, key=self.stranger),
            self._token(method, exp=now - 10, iat=now - 70),
            self._token(method, aud="did:web:elsewhere.test"),
            self._token(method, aud=self.audience + "#atproto_labeler"),
            self._token(method, lxm="com.atproto.repo.createRecord"),
            self._token(method, lxm=None),
            self._token(method, exp=2**63),
            self._token(method, exp="soon"),
            *(self._token(method, key=self.stranger, iss=iss) for iss in UNRESOLVABLE),
        ]

"""Compact JWTs signed by an atproto key: inter-service auth tokens (bskydocs-service-auth.md;
spec-xrpc.md, "Inter-Service Authentication").

ES256K for K-256 keys and ES256 for P-256, the signature being the 64-byte low-S r||s in
base64url, as every atproto service expects. Verification lives with the services that accept
tokens; this module only writes them (a PDS for its accounts, a person with their own key).
"""

from __future__ import annotations

import base64
import json
from typing import Any, Final

from atcore.keys import PrivateKey

ES_ALG: Final = {"k256": "ES256K", "p256": "ES256"}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def json_segment(value: dict[str, Any]) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def encode_es(payload: dict[str, Any], key: PrivateKey) -> str:
    """A token signed by `key` (ES256K for K-256, ES256 for P-256), `typ` JWT."""
    header = {"typ": "JWT", "alg": ES_ALG[key.public_key().curve]}
    signing_input = f"{json_segment(header)}.{json_segment(payload)}"
    return f"{signing_input}.{b64url(key.sign(signing_input.encode()))}"

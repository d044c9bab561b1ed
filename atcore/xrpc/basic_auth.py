"""HTTP Basic credentials (RFC 7617), as operators' admin endpoints take them (`admin:PASSWORD`).

The header comes from anyone: its base64 may hold non-ASCII characters (Starlette decodes
header bytes as Latin-1) and its decoded bytes need not be UTF-8. Both are a 401, never a 500.
"""

from __future__ import annotations

import base64
import binascii

from starlette.requests import HTTPConnection

from atcore.xrpc.errors import AuthRequired


def basic_credentials(conn: HTTPConnection) -> tuple[str, str] | None:
    """`(user, password)` from an `Authorization: Basic` header; None when the request has no
    Authorization header or one of another scheme; AuthRequired when it is malformed."""
    scheme, _, encoded = conn.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, ValueError):  # bad base64, non-ASCII text, or not UTF-8 inside
        raise AuthRequired("Invalid basic authorization") from None
    user, colon, password = decoded.partition(":")
    if not colon:
        raise AuthRequired("Invalid basic authorization")
    return user, password

"""Lexicon `cid` strings: generic CID string syntax (spec-lexicon.md, spec-data-model.md).

Only the shape is checked (multibase characters, bounded length, not CIDv0); decoding and
codec/hash rules belong to atcore.cid.parse_cid.
"""

from __future__ import annotations

import re
from typing import NewType

from atcore.errors import InvalidSyntax

CidString = NewType("CidString", str)

# Characters of the multibase encodings in use (base32/36/58/64, hex, octal) and padding.
_CID_RE = re.compile(r"[a-zA-Z0-9+=]{8,256}")


def parse_cid_string(text: str) -> CidString:
    """Return `text` as a CidString, or raise InvalidSyntax."""
    if _CID_RE.fullmatch(text) is None:
        raise InvalidSyntax(f"invalid CID string syntax: {text[:80]!r}")
    # A base58 CIDv0 (sha-256 multihash, no multibase prefix) always starts with "Qm".
    if text.startswith("Qm"):
        raise InvalidSyntax("CIDv0 strings are not supported by atproto")
    return CidString(text)


def is_valid_cid_string(text: str) -> bool:
    return _CID_RE.fullmatch(text) is not None and not text.startswith("Qm")

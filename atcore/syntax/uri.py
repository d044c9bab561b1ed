"""Lexicon `uri` strings: any RFC 3986 URI with a scheme (spec-lexicon.md, uri)."""

from __future__ import annotations

import re
from typing import NewType

from atcore.errors import InvalidSyntax

Uri = NewType("Uri", str)

MAX_URI_LENGTH = 8192

# An RFC 3986 scheme, ':', then at least one printable, non-space ASCII character. The rest
# of the URI is deliberately not parsed further: Lexicon allows every scheme.
_URI_RE = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*:[!-~]+")


def parse_uri(text: str) -> Uri:
    """Return `text` as a Uri, or raise InvalidSyntax."""
    if len(text) > MAX_URI_LENGTH:
        raise InvalidSyntax(f"URI is longer than {MAX_URI_LENGTH} characters")
    if _URI_RE.fullmatch(text) is None:
        raise InvalidSyntax(f"invalid URI syntax: {text[:80]!r}")
    return Uri(text)


def is_valid_uri(text: str) -> bool:
    return len(text) <= MAX_URI_LENGTH and _URI_RE.fullmatch(text) is not None

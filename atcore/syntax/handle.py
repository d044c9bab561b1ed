"""Handle syntax, normalisation and reserved TLDs (spec-handle.md)."""

from __future__ import annotations

import re
from typing import NewType

from atcore.errors import InvalidSyntax

Handle = NewType("Handle", str)

MAX_HANDLE_LENGTH = 253

# The value services put in API responses when an account has no verified handle.
INVALID_HANDLE = Handle("handle.invalid")

# Syntactically fine, but registration and resolution must refuse them (spec "Additional
# Non-Syntax Restrictions"). `.test` is separate: allowed only in development.
DISALLOWED_TLDS = frozenset(
    {"alt", "arpa", "example", "internal", "invalid", "local", "localhost", "onion"}
)
DEVELOPMENT_TLD = "test"

# Labels of 1-63 chars, no leading/trailing hyphen, at least two labels, and a TLD that does
# not start with a digit (so IPv4 addresses never match).
_HANDLE_RE = re.compile(
    r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+"
    r"[a-zA-Z](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?"
)


def parse_handle(text: str) -> Handle:
    """Return the lower-cased normal form of `text`, or raise InvalidSyntax."""
    if len(text) > MAX_HANDLE_LENGTH:
        raise InvalidSyntax(f"handle is longer than {MAX_HANDLE_LENGTH} characters")
    if _HANDLE_RE.fullmatch(text) is None:
        raise InvalidSyntax(f"invalid handle syntax: {text[:80]!r}")
    return Handle(text.lower())


def is_valid_handle(text: str) -> bool:
    return len(text) <= MAX_HANDLE_LENGTH and _HANDLE_RE.fullmatch(text) is not None


def is_disallowed_tld(handle: str, *, allow_test: bool = False) -> bool:
    """True if a handle's TLD must be refused for registration or resolution.

    `.test` counts as disallowed unless `allow_test` (development networks) is set.
    """
    tld = handle.rpartition(".")[2].lower()
    if tld == DEVELOPMENT_TLD:
        return not allow_test
    return tld in DISALLOWED_TLDS

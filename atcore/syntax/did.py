"""DID syntax as used in atproto (spec-did.md, "DID Identifier Syntax")."""

from __future__ import annotations

import re
from typing import NewType

from atcore.errors import InvalidSyntax

Did = NewType("Did", str)

# atproto's hard limit; the generic DID spec has none.
MAX_DID_LENGTH = 2048

# Method is lowercase letters; the identifier may hold '%' but may not end with ':' or '%'.
_DID_RE = re.compile(r"did:[a-z]+:[a-zA-Z0-9._:%-]*[a-zA-Z0-9._-]")


def parse_did(text: str) -> Did:
    """Return `text` as a Did, or raise InvalidSyntax saying why it is not one."""
    if len(text) > MAX_DID_LENGTH:
        raise InvalidSyntax(f"DID is longer than {MAX_DID_LENGTH} characters")
    if _DID_RE.fullmatch(text) is None:
        raise InvalidSyntax(f"invalid DID syntax: {text[:80]!r}")
    return Did(text)


def is_valid_did(text: str) -> bool:
    return len(text) <= MAX_DID_LENGTH and _DID_RE.fullmatch(text) is not None

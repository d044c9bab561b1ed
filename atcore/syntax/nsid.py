"""Namespaced Identifier (NSID) syntax (spec-nsid.md)."""

from __future__ import annotations

import re
from typing import NewType

from atcore.errors import InvalidSyntax

Nsid = NewType("Nsid", str)

# 253 (authority) + 1 + 63 (name). The spec also caps the authority at 253 characters, but the
# official vectors (both copies) list a 283-character authority as valid and the reference
# implementations only check the total, so neither do we: such an NSID is merely unresolvable.
MAX_NSID_LENGTH = 317

# Reversed domain authority (first label may not start with a digit, later ones may), then a
# name segment of letters and digits that does not start with a digit.
_NSID_RE = re.compile(
    r"[a-zA-Z](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?"
    r"(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)+"
    r"\.[a-zA-Z][a-zA-Z0-9]{0,62}"
)


def parse_nsid(text: str) -> Nsid:
    """Return `text` as an Nsid (case preserved), or raise InvalidSyntax."""
    if len(text) > MAX_NSID_LENGTH:
        raise InvalidSyntax(f"NSID is longer than {MAX_NSID_LENGTH} characters")
    if _NSID_RE.fullmatch(text) is None:
        raise InvalidSyntax(f"invalid NSID syntax: {text[:80]!r}")
    return Nsid(text)


def is_valid_nsid(text: str) -> bool:
    return len(text) <= MAX_NSID_LENGTH and _NSID_RE.fullmatch(text) is not None


def authority(nsid: Nsid) -> str:
    """The domain authority as a lower-case hostname: `com.example.fooBar` -> `example.com`."""
    return ".".join(reversed(nsid.lower().split(".")[:-1]))


def name(nsid: Nsid) -> str:
    """The final, case-sensitive name segment: `com.example.fooBar` -> `fooBar`."""
    return nsid.rpartition(".")[2]

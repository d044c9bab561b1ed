"""Lexicon `at-identifier` strings: a DID or a handle (spec-lexicon.md, at-identifier)."""

from __future__ import annotations

from atcore.errors import InvalidSyntax
from atcore.syntax.did import Did, is_valid_did, parse_did
from atcore.syntax.handle import Handle, is_valid_handle, parse_handle


def parse_at_identifier(text: str) -> Did | Handle:
    """Return a Did, or a Handle in lower-cased normal form, or raise InvalidSyntax.

    A DID always starts with `did:` and a handle can never contain ':', so the prefix decides.
    """
    if text.startswith("did:"):
        return parse_did(text)
    try:
        return parse_handle(text)
    except InvalidSyntax:
        raise InvalidSyntax(f"not a DID or a handle: {text[:80]!r}") from None


def is_valid_at_identifier(text: str) -> bool:
    return is_valid_did(text) if text.startswith("did:") else is_valid_handle(text)

"""Lexicon `language` strings: BCP 47 language tags (spec-lexicon.md, RFC 5646).

Two levels, as the spec asks: `parse_language` checks that a tag is *well-formed* per the
RFC 5646 grammar, which is what Lexicon validation requires (so records carrying, e.g., `JA`
are accepted like the reference implementations accept them). `parse_language_strict` also
rejects well-formed tags that cannot be *valid* without consulting the subtag registry: a
primary language subtag that is not 2-3 lower-case letters (4-letter subtags are reserved,
none of 5-8 letters are registered, and lower case is the canonical form), a repeated variant,
or a repeated extension singleton (RFC 5646 section 2.2.9). Clients that "ignore language
strings which are well-formed but not valid" can use the strict form.
"""

from __future__ import annotations

import re
from typing import NewType

from atcore.errors import InvalidSyntax

Language = NewType("Language", str)

# RFC 5646 sets no limit; this bounds the work done on hostile input.
MAX_LANGUAGE_LENGTH = 256

_GRANDFATHERED = (
    "en-GB-oed|i-ami|i-bnn|i-default|i-enochian|i-hak|i-klingon|i-lux|i-mingo|i-navajo|i-pwn"
    "|i-tao|i-tay|i-tsu|sgn-BE-FR|sgn-BE-NL|sgn-CH-DE"
    "|art-lojban|cel-gaulish|no-bok|no-nyn|zh-guoyu|zh-hakka|zh-min|zh-min-nan|zh-xiang"
)
_PRIVATE_USE = r"x(?:-[a-z0-9]{1,8})+"
_LANGTAG = (
    r"(?P<language>[a-z]{2,3}(?:-[a-z]{3}){0,3}|[a-z]{4,8})"
    r"(?:-[a-z]{4})?"  # script
    r"(?:-(?:[a-z]{2}|[0-9]{3}))?"  # region
    r"(?P<variants>(?:-(?:[a-z0-9]{5,8}|[0-9][a-z0-9]{3}))*)"
    r"(?P<extensions>(?:-[0-9a-wyz](?:-[a-z0-9]{2,8})+)*)"
    rf"(?:-{_PRIVATE_USE})?"
)
# Tags are case-insensitive; re.ASCII keeps IGNORECASE from folding in letters such as the
# Kelvin sign into [a-z].
_LANGUAGE_RE = re.compile(
    rf"(?:{_GRANDFATHERED})|{_PRIVATE_USE}|{_LANGTAG}", re.IGNORECASE | re.ASCII
)


def _match(text: str) -> re.Match[str]:
    match = _LANGUAGE_RE.fullmatch(text) if len(text) <= MAX_LANGUAGE_LENGTH else None
    if match is None:
        raise InvalidSyntax(f"not a well-formed BCP 47 language tag: {text[:80]!r}")
    return match


def parse_language(text: str) -> Language:
    """Return `text` as a Language if it is a well-formed tag, or raise InvalidSyntax."""
    _match(text)
    return Language(text)


def is_valid_language(text: str) -> bool:
    return len(text) <= MAX_LANGUAGE_LENGTH and _LANGUAGE_RE.fullmatch(text) is not None


def parse_language_strict(text: str) -> Language:
    """Like parse_language, but also reject tags that can never be valid (see module doc)."""
    match = _match(text)
    language = match.group("language")
    if language is None:  # grandfathered or private-use tag: no subtags to check
        return Language(text)
    primary = language.partition("-")[0]
    if len(primary) > 3 or not primary.islower():
        raise InvalidSyntax(f"primary language subtag must be 2-3 lower-case letters: {text!r}")
    variants = match.group("variants").lower().split("-")[1:]
    if len(set(variants)) != len(variants):
        raise InvalidSyntax(f"language tag repeats a variant subtag: {text!r}")
    singletons = [s for s in match.group("extensions").lower().split("-") if len(s) == 1]
    if len(set(singletons)) != len(singletons):
        raise InvalidSyntax(f"language tag repeats an extension singleton: {text!r}")
    return Language(text)

"""AT-URIs in the restricted Lexicon `at-uri` syntax (spec-at-uri-scheme.md).

`at://AUTHORITY[/COLLECTION[/RKEY]]`, where the authority is a DID or handle, the collection
an NSID and the rkey a record key. Queries, fragments and trailing slashes are not part of
this syntax and are rejected.
"""

from __future__ import annotations

from dataclasses import dataclass

from atcore.errors import InvalidSyntax
from atcore.syntax.atidentifier import parse_at_identifier
from atcore.syntax.did import Did
from atcore.syntax.handle import Handle
from atcore.syntax.nsid import Nsid, parse_nsid
from atcore.syntax.recordkey import RecordKey, parse_record_key

MAX_ATURI_LENGTH = 8192
_PREFIX = "at://"


@dataclass(frozen=True, slots=True)
class AtUri:
    authority: Did | Handle
    collection: Nsid | None = None
    rkey: RecordKey | None = None

    def __post_init__(self) -> None:
        if self.rkey is not None and self.collection is None:
            raise InvalidSyntax("an AT-URI with a record key needs a collection")

    def __str__(self) -> str:
        uri = _PREFIX + self.authority
        if self.collection is not None:
            uri += "/" + self.collection
            if self.rkey is not None:
                uri += "/" + self.rkey
        return uri


def parse_aturi(text: str) -> AtUri:
    """Parse a restricted AT-URI, or raise InvalidSyntax naming the offending part.

    A handle authority is lower-cased (its normal form), so str() of the result is canonical.
    """
    if len(text) > MAX_ATURI_LENGTH:
        raise InvalidSyntax(f"AT-URI is longer than {MAX_ATURI_LENGTH} characters")
    if not text.startswith(_PREFIX):
        raise InvalidSyntax(f"AT-URI must start with 'at://': {text[:80]!r}")
    parts = text[len(_PREFIX) :].split("/")
    if len(parts) > 3:
        raise InvalidSyntax(f"AT-URI has more than authority/collection/rkey: {text[:80]!r}")
    try:
        authority = parse_at_identifier(parts[0])
        collection = parse_nsid(parts[1]) if len(parts) > 1 else None
        rkey = parse_record_key(parts[2]) if len(parts) > 2 else None
    except InvalidSyntax as exc:
        raise InvalidSyntax(f"invalid AT-URI {text[:80]!r}: {exc}") from None
    return AtUri(authority, collection, rkey)


def is_valid_aturi(text: str) -> bool:
    try:
        parse_aturi(text)
    except InvalidSyntax:
        return False
    return True

"""Record key syntax (spec-record-key.md, "Record Key Syntax")."""

from __future__ import annotations

import re
from typing import NewType

from atcore.errors import InvalidSyntax

RecordKey = NewType("RecordKey", str)

MAX_RECORD_KEY_LENGTH = 512

# URI-path-safe "unreserved" characters plus ':'; '.' and '..' are excluded separately.
_RECORD_KEY_RE = re.compile(r"[a-zA-Z0-9._:~-]{1,512}")


def parse_record_key(text: str) -> RecordKey:
    """Return `text` as a RecordKey, or raise InvalidSyntax."""
    if _RECORD_KEY_RE.fullmatch(text) is None:
        raise InvalidSyntax(f"invalid record key syntax: {text[:80]!r}")
    if text == "." or text == "..":
        raise InvalidSyntax(f"record key may not be {text!r}")
    return RecordKey(text)


def is_valid_record_key(text: str) -> bool:
    return _RECORD_KEY_RE.fullmatch(text) is not None and text != "." and text != ".."

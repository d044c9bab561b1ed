"""Integers written as text from outside: query parameters, cursors, ports (spec-data-model.md,
"integer": signed, 64 bits).

`str.isdigit()` and `int()` are the wrong tools at the edge: they accept digits from every
script (`'²'.isdigit()` is true, `int('٣')` is 3) and any length (a 5,000-digit number costs a
quadratic conversion, then overflows SQLite). `parse_integer` takes ASCII digits only, refuses
anything longer than the widest allowed value before converting, and checks the range.
"""

from __future__ import annotations

import re
from typing import Final

from atcore.errors import InvalidSyntax

INT64_MIN: Final = -(1 << 63)
INT64_MAX: Final = (1 << 63) - 1

_DIGITS = re.compile(r"-?[0-9]+")


def parse_integer(text: str, minimum: int = INT64_MIN, maximum: int = INT64_MAX) -> int:
    """`text` as an integer in `minimum..maximum`, else InvalidSyntax saying which rule failed
    as a predicate ("must be an integer, not 'x'"), for the caller to prefix with a name."""
    if _DIGITS.fullmatch(text) is None:
        raise InvalidSyntax(f"must be an integer, not {text[:40]!r}")
    widest = max(len(str(abs(minimum))), len(str(abs(maximum))))
    if len(text.lstrip("-").lstrip("0")) > widest:  # too long to be in range: do not convert
        raise InvalidSyntax(f"is out of range ({minimum}..{maximum}): {text[:40]}...")
    number = int(text)
    if not minimum <= number <= maximum:
        raise InvalidSyntax(f"is out of range ({minimum}..{maximum}): {number}")
    return number

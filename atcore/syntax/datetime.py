"""Lexicon `datetime` strings: strict syntax plus calendar checks (spec-lexicon.md, datetime)."""

from __future__ import annotations

import calendar
import re
from datetime import UTC, datetime
from typing import NewType

from atcore.errors import InvalidSyntax

Datetime = NewType("Datetime", str)

_DAYS_IN_MONTH = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)

# The RFC 3339 / ISO 8601 / WHATWG intersection: 4-digit year, upper-case 'T', whole seconds,
# optional fraction, and 'Z' or a +hh:mm / -hh:mm offset. [0-9] rather than \d, which would
# accept non-ASCII digits.
_DATETIME_RE = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.[0-9]{1,20})?"
    r"(?:Z|([+-])([0-9]{2}):([0-9]{2}))"
)


def parse_datetime(text: str) -> Datetime:
    """Return `text` unchanged as a Datetime, or raise InvalidSyntax.

    Beyond the syntax, the fields must name a real instant: month 1-12, a day that exists in
    that month, hour 0-23, minute and second 0-59, a sane offset, and no instant before year 0
    once normalised to UTC. The string itself is kept, since re-serialising could change it.
    """
    match = _DATETIME_RE.fullmatch(text)
    if match is None:
        raise InvalidSyntax(f"invalid datetime syntax: {text[:80]!r}")
    year, month, day, hour, minute, second = (int(g) for g in match.group(1, 2, 3, 4, 5, 6))
    if not 1 <= month <= 12:
        raise InvalidSyntax(f"datetime month out of range: {text!r}")
    # calendar.monthrange needs a weekday and so refuses year 0; the leap-year rule does not.
    days = 29 if month == 2 and calendar.isleap(year) else _DAYS_IN_MONTH[month - 1]
    if not 1 <= day <= days:
        raise InvalidSyntax(f"datetime day out of range: {text!r}")
    if hour > 23 or minute > 59 or second > 59:
        raise InvalidSyntax(f"datetime time of day out of range: {text!r}")
    offset = 0
    if match.group(7) is not None:
        off_hours, off_minutes = int(match.group(8)), int(match.group(9))
        if off_hours > 23 or off_minutes > 59:
            raise InvalidSyntax(f"datetime offset out of range: {text!r}")
        offset = off_hours * 60 + off_minutes
        if match.group(7) == "-":
            # ISO 8601 forbids "negative zero" (RFC 3339's "unknown local offset").
            if offset == 0:
                raise InvalidSyntax(f"datetime offset -00:00 is not allowed: {text!r}")
            offset = -offset
    # Only the first day of year 0 can fall before 0000-01-01T00:00Z, since offsets are < 24h.
    if year == 0 and month == 1 and day == 1 and (hour * 60 + minute) * 60 + second < offset * 60:
        raise InvalidSyntax(f"datetime is before year 0 in UTC: {text!r}")
    return Datetime(text)


def is_valid_datetime(text: str) -> bool:
    try:
        parse_datetime(text)
    except InvalidSyntax:
        return False
    return True


def format_datetime(moment: datetime) -> str:
    """An aware datetime as the strings atproto writes: UTC, milliseconds, `Z`
    (`2024-05-01T12:00:00.000Z`)."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_iso() -> str:
    """The current time as `format_datetime` writes it (createdAt, indexedAt, event times)."""
    return format_datetime(datetime.now(UTC))

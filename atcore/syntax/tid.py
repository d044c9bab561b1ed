"""Timestamp identifiers (TIDs) and a monotonic TID generator (spec-tid.md)."""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections.abc import Callable
from typing import NewType

from atcore.errors import InvalidSyntax

Tid = NewType("Tid", str)

TID_LENGTH = 13
MAX_TIMESTAMP = (1 << 53) - 1
MAX_CLOCK_ID = (1 << 10) - 1

_ALPHABET = "234567abcdefghijklmnopqrstuvwxyz"
# Python's int(..., 32) digits, position for position with the base32-sortable alphabet.
_TO_INT_DIGITS = str.maketrans(_ALPHABET, "0123456789abcdefghijklmnopqrstuv")
_TID_RE = re.compile(r"[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}")


def parse_tid(text: str) -> Tid:
    """Return `text` as a Tid, or raise InvalidSyntax."""
    if _TID_RE.fullmatch(text) is None:
        raise InvalidSyntax(f"invalid TID syntax: {text[:80]!r}")
    return Tid(text)


def is_valid_tid(text: str) -> bool:
    return _TID_RE.fullmatch(text) is not None


def tid_from_timestamp(micros: int, clock_id: int) -> Tid:
    """Encode microseconds since the UNIX epoch and a 10-bit clock identifier as a TID."""
    if not 0 <= micros <= MAX_TIMESTAMP:
        raise ValueError(f"TID timestamp {micros} is outside 0..2**53-1 microseconds")
    if not 0 <= clock_id <= MAX_CLOCK_ID:
        raise ValueError(f"TID clock id {clock_id} is outside 0..1023")
    value = (micros << 10) | clock_id
    chars = []
    for _ in range(TID_LENGTH):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return Tid("".join(reversed(chars)))


def tid_timestamp(tid: Tid) -> int:
    """Microseconds since the UNIX epoch encoded in a TID."""
    return int(tid.translate(_TO_INT_DIGITS), 32) >> 10


def _wall_clock_micros() -> int:
    return time.time_ns() // 1000


class TidClock:
    """Issues strictly increasing TIDs, whatever the injected clock does.

    Each TID's timestamp is max(now(), previous + 1), so a clock that repeats a microsecond or
    steps backwards only makes the TIDs run slightly ahead of it until it catches up.
    """

    def __init__(
        self, now: Callable[[], int] = _wall_clock_micros, clock_id: int | None = None
    ) -> None:
        if clock_id is None:
            clock_id = secrets.randbelow(MAX_CLOCK_ID + 1)
        elif not 0 <= clock_id <= MAX_CLOCK_ID:
            raise ValueError(f"TID clock id {clock_id} is outside 0..1023")
        self._now = now
        self.clock_id = clock_id
        self._last = -1
        self._lock = threading.Lock()

    def next(self) -> Tid:
        """A TID greater than every TID this clock issued or observed before."""
        with self._lock:
            self._last = max(self._now(), self._last + 1)
            return tid_from_timestamp(self._last, self.clock_id)

    def observe(self, tid: Tid) -> None:
        """Make later TIDs sort after `tid` (e.g. a repository's previous rev)."""
        with self._lock:
            self._last = max(self._last, tid_timestamp(tid))

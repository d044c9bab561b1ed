"""Per-host event rate limits, as indigo's relay sets them (indigo-relay-HACKING.md).

An untrusted host may send 50 + n/1000 events a second, 2,500 + n an hour and 20,000 + 10n a
day, where n is its account limit; a trusted host 5,000 a second, 50M an hour and 500M a day.
An admin may override each. Windows slide: the previous window's count weighs in by how much
of it still overlaps, so a burst at a window boundary cannot pass twice the limit.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

TRUSTED_RATES = (5_000, 50_000_000, 500_000_000)
_SECOND, _HOUR, _DAY = 1.0, 3600.0, 86400.0


@dataclass(frozen=True)
class Rates:
    per_second: int
    per_hour: int
    per_day: int


def host_rates(
    account_limit: int,
    trusted: bool,
    per_second: int | None = None,
    per_hour: int | None = None,
    per_day: int | None = None,
) -> Rates:
    """A host's limits: the formula scaled by its account limit, then any admin override."""
    if trusted:
        base = Rates(*TRUSTED_RATES)
    else:
        base = Rates(50 + account_limit // 1000, 2_500 + account_limit, 20_000 + 10 * account_limit)
    return Rates(
        per_second if per_second is not None else base.per_second,
        per_hour if per_hour is not None else base.per_hour,
        per_day if per_day is not None else base.per_day,
    )


class SlidingWindow:
    """At most `limit` events in any window of `size` seconds (approximately, by weighting)."""

    def __init__(self, size: float, limit: int, clock: Callable[[], float]) -> None:
        self.size = size
        self.limit = limit
        self._clock = clock
        self._start = clock()
        self._current = 0
        self._previous = 0

    def _roll(self, now: float) -> None:
        elapsed = now - self._start
        if elapsed >= self.size:
            windows = int(elapsed // self.size)
            self._previous = self._current if windows == 1 else 0
            self._current = 0
            self._start += windows * self.size

    def _estimate(self, now: float) -> float:
        overlap = 1.0 - (now - self._start) / self.size
        return self._previous * overlap + self._current

    def wait_time(self) -> float:
        """0 when an event may pass now, else roughly how long until one may."""
        now = self._clock()
        self._roll(now)
        if self._estimate(now) < self.limit:
            return 0.0
        if self._current >= self.limit:
            return self._start + self.size - now
        # The previous window's weight decays linearly; wait until it has decayed enough.
        needed = (self._estimate(now) - self.limit + 1) / max(self._previous, 1) * self.size
        return min(needed, self._start + self.size - now)

    def take(self) -> None:
        self._current += 1


class HostLimiter:
    """The three windows of one host; `wait_time()` then `take()` for each event."""

    def __init__(self, rates: Rates, clock: Callable[[], float] = time.monotonic) -> None:
        self.windows = [
            SlidingWindow(_SECOND, rates.per_second, clock),
            SlidingWindow(_HOUR, rates.per_hour, clock),
            SlidingWindow(_DAY, rates.per_day, clock),
        ]

    def set_rates(self, rates: Rates) -> None:
        for window, limit in zip(
            self.windows, (rates.per_second, rates.per_hour, rates.per_day), strict=True
        ):
            window.limit = limit

    def wait_time(self) -> float:
        return max(window.wait_time() for window in self.windows)

    def take(self) -> None:
        for window in self.windows:
            window.take()

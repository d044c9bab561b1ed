"""Pages of the log, filtered and framed once for every subscriber that sends them.

At the live end, subscribers with the same filter are woken together at the same position
(jetstream.log), so each would filter the same events and frame the same bytes: with a
thousand subscribers that is most of the server's work. The first of them to read a page
stores what it sends here, keyed by what decides it (the frames' kind, compression, filter
and the position read after); the others send the stored bytes in one write. A page is
immutable (the log's events are), so a stored page is exactly what a subscriber reading at
that position would have made, only possibly shorter than the log is now: the subscriber
reads on from the page's end. Only the most recent pages are kept.
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable
from typing import Final

from runtime.ws_frames import binary_frames

__all__ = ["Page", "SharedPages"]

MAX_PAGES: Final = 4096
MAX_GROUPS: Final = 100_000


class Page:
    """What one page of the log sends: its frames, and the key of its last event read."""

    __slots__ = ("frames", "end", "_framed", "_text")

    def __init__(self, frames: list[bytes], end: int, text: bool) -> None:
        self.frames = frames
        self.end = end
        self._text = text
        self._framed: bytes | None = None

    def framed(self) -> bytes:
        """The frames as websocket frames back to back, made once."""
        if self._framed is None:
            self._framed = binary_frames(self.frames, text=self._text)
        return self._framed


class SharedPages:
    def __init__(self, limit: int = MAX_PAGES) -> None:
        self._groups: dict[Hashable, int] = {}
        self._pages: dict[tuple[int, int], Page] = {}
        self._limit = limit
        self._numbers = itertools.count()

    def group(self, key: Hashable) -> int:
        """A number, never reused, for what decides a page besides the position: subscribers
        hash their filter once per filter rather than once per page."""
        number = self._groups.get(key)
        if number is None:
            if len(self._groups) >= MAX_GROUPS:  # mostly filters of subscribers long gone
                self._groups.clear()
            number = self._groups[key] = next(self._numbers)
        return number

    def get(self, group: int, after: int) -> Page | None:
        return self._pages.get((group, after))

    def put(self, group: int, after: int, page: Page) -> None:
        pages = self._pages
        if len(pages) >= self._limit:
            for old in list(pages)[: self._limit // 2]:
                del pages[old]
        pages[(group, after)] = page

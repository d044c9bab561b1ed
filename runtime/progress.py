"""A progress bar on standard error: redrawn in place on a terminal, one line per percent
otherwise (so logs and the scripts that read them see it advance)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

WIDTH = 30


class Progress:
    def __init__(self, label: str, total: int, out: TextIO | None = None) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self.bytes = 0
        self._out = out if out is not None else sys.stderr
        self._tty = self._out.isatty()
        self._started = time.monotonic()
        self._shown = -1

    def add(self, count: int = 1, size: int = 0) -> None:
        self.done += count
        self.bytes += size
        percent = 100 * self.done // max(self.total, 1)
        if self._tty or percent != self._shown:
            self._shown = percent
            self._draw()

    def close(self) -> None:
        if self._tty:
            self._out.write("\n")
            self._out.flush()

    def _draw(self) -> None:
        filled = WIDTH * self.done // max(self.total, 1)
        elapsed = max(time.monotonic() - self._started, 1e-6)
        rate = self.bytes / elapsed / 1e6
        line = (
            f"{self.label} [{'#' * filled}{'.' * (WIDTH - filled)}] {self.done}/{self.total}"
            f" {self.bytes / 1e6:.1f} MB {rate:.1f} MB/s"
        )
        self._out.write(f"\r{line}" if self._tty else f"{line}\n")
        self._out.flush()

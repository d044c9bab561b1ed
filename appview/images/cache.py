"""The on-disk cache of rendered images, bounded by total bytes, least recently used out first.

One file per rendition, named by the hash of its key (DIDs and CIDs never reach the file
system as names). Recency is the file's mtime, touched on every hit, so the order survives a
restart: the index is rebuilt from the directory at start-up.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections import OrderedDict
from pathlib import Path
from typing import Final

_SUFFIX: Final = ".img"


class ImageCache:
    """`get`/`put` of bytes by key; all bookkeeping happens on the event loop, file reads and
    writes in worker threads."""

    def __init__(self, directory: Path, max_bytes: int) -> None:
        if max_bytes < 1:
            raise ValueError(f"image cache bound must be positive, got {max_bytes}")
        self.directory = directory
        self.max_bytes = max_bytes
        directory.mkdir(parents=True, exist_ok=True)
        for leftover in directory.glob("*.tmp"):  # a write cut short by a crash
            leftover.unlink(missing_ok=True)
        self._sizes: OrderedDict[str, int] = OrderedDict()  # file name -> size, oldest first
        self.total_bytes = 0
        for path in sorted(_cached_files(directory), key=lambda p: p.stat().st_mtime_ns):
            self._add(path.name, path.stat().st_size)
        self._evict()

    async def get(self, key: str) -> bytes | None:
        name = _file_name(key)
        if name not in self._sizes:
            return None
        self._sizes.move_to_end(name)
        try:
            return await asyncio.to_thread(_read_and_touch, self.directory / name)
        except FileNotFoundError:  # removed behind our back: a miss
            self._forget(name)
            return None

    async def put(self, key: str, data: bytes) -> None:
        """Keep `data` under `key` unless it alone exceeds the bound; evict to fit."""
        if len(data) > self.max_bytes:
            return
        name = _file_name(key)
        await asyncio.to_thread(_write_atomically, self.directory / name, data)
        self._forget(name)
        self._add(name, len(data))
        self._evict()

    def _add(self, name: str, size: int) -> None:
        self._sizes[name] = size
        self.total_bytes += size

    def _forget(self, name: str) -> None:
        self.total_bytes -= self._sizes.pop(name, 0)

    def _evict(self) -> None:
        while self.total_bytes > self.max_bytes:
            name, size = self._sizes.popitem(last=False)
            self.total_bytes -= size
            (self.directory / name).unlink(missing_ok=True)


def _file_name(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest() + _SUFFIX


def _cached_files(directory: Path) -> list[Path]:
    return [path for path in directory.iterdir() if path.suffix == _SUFFIX and path.is_file()]


def _read_and_touch(path: Path) -> bytes:
    data = path.read_bytes()
    os.utime(path)
    return data


def _write_atomically(path: Path, data: bytes) -> None:
    """Readers see the whole file or none of it (`.tmp` files are never indexed)."""
    temporary = path.with_name(f"{path.name}.{os.getpid()}.{id(data)}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)

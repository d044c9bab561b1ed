"""appview.images.cache: bytes on disk under a total-size bound, least recently used out first."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from appview.images.cache import ImageCache


def disk_bytes(directory: Path) -> int:
    return sum(path.stat().st_size for path in directory.iterdir())


async def test_hits_misses_and_eviction_by_total_bytes(tmp_path: Path) -> None:
    cache = ImageCache(tmp_path, max_bytes=250)
    await cache.put("a", b"A" * 100)
    await cache.put("b", b"B" * 100)
    assert await cache.get("a") == b"A" * 100  # a is now the most recently used
    await cache.put("c", b"C" * 100)  # 300 > 250: the least recently used (b) goes
    assert await cache.get("b") is None
    assert await cache.get("a") == b"A" * 100 and await cache.get("c") == b"C" * 100
    assert cache.total_bytes == 200 == disk_bytes(tmp_path)

    await cache.put("huge", b"H" * 251)  # bigger than the whole bound: never kept
    assert await cache.get("huge") is None and cache.total_bytes == 200

    await cache.put("a", b"a" * 50)  # replacing a key counts its new size only
    assert cache.total_bytes == 150 == disk_bytes(tmp_path)


async def test_recency_and_bound_survive_a_restart(tmp_path: Path) -> None:
    cache = ImageCache(tmp_path, max_bytes=1000)
    for index, key in enumerate(("old", "mid", "new")):
        await cache.put(key, key.encode() * 100)
        # mtimes a second apart: the order must not hinge on the file system's clock grain
        path = next(p for p in tmp_path.iterdir() if p.read_bytes().startswith(key.encode()))
        os.utime(path, (1_000_000 + index, 1_000_000 + index))
    (tmp_path / "half-written.img.1.2.tmp").write_bytes(b"x" * 10)

    smaller = ImageCache(tmp_path, max_bytes=700)  # 900 bytes on disk: "old" must go
    assert await smaller.get("old") is None
    assert await smaller.get("mid") == b"mid" * 100 and await smaller.get("new") == b"new" * 100
    assert smaller.total_bytes == 600 == disk_bytes(tmp_path)


async def test_a_file_removed_behind_its_back_is_a_miss(tmp_path: Path) -> None:
    cache = ImageCache(tmp_path, max_bytes=1000)
    await cache.put("k", b"bytes")
    for path in tmp_path.iterdir():
        path.unlink()
    assert await cache.get("k") is None and cache.total_bytes == 0


def test_the_bound_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="positive"):
        ImageCache(tmp_path, max_bytes=0)

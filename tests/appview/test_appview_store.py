"""appview.db.open_database: how the embedded store's connections are set up."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from appview.config import AppviewConfig
from appview.db import open_database


def _mmap_size(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA mmap_size").fetchone()[0])


async def test_the_read_api_maps_the_sqlite_file(tmp_path: Path) -> None:
    db = open_database(AppviewConfig.load({}, data_dir=str(tmp_path)))
    await db.open()
    try:
        assert await db.read(_mmap_size) > 0
    finally:
        await db.close()

"""The appview's SQLite store, `<data>/appview.sqlite`: all its SQL lives in this package
(appview.db.index writes, appview.db.reads reads), the schema in appview.db.schema."""

from __future__ import annotations

from pathlib import Path

from appview.db.schema import migrate
from skyloft.sqlite import SqliteDatabase


class Database(SqliteDatabase):
    """One writer thread (ingest's batches, updateSeen) and one reader thread (the read API)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, migrate, "appview")

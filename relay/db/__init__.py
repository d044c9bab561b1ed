"""The relay's SQLite store, `<data>/relay.sqlite`: every SQL statement lives in this package.

One thread writes and one reads, each with its own connection (WAL lets replays and listings
read while the writer commits). Each call handed to a thread is one transaction: the callers
pass a function of the connection (from relay.db.hosts, .accounts, .events), never SQL.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from relay.db.schema import SCHEMA
from runtime.sqlite import SqliteDatabase, connect

__all__ = ["Database", "connect"]


def _create_schema(conn: sqlite3.Connection) -> None:
    conn.executescript(SCHEMA)


class Database(SqliteDatabase):
    """The relay's writer and reader connections and their threads."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, _create_schema, "relay")

"""SQLite storage of PLC operation logs: every SQL statement the directory runs lives here."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from atcore.identity.plc_log import LogEntry, parse_timestamp
from atcore.syntax.datetime import format_datetime
from runtime.sqlite import SqliteDatabase

_SCHEMA = """
CREATE TABLE IF NOT EXISTS operations (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    did TEXT NOT NULL,
    cid TEXT NOT NULL,
    prev TEXT,
    operation TEXT NOT NULL,
    nullified INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    UNIQUE (did, cid)
);
CREATE INDEX IF NOT EXISTS operations_by_did ON operations (did, seq);
CREATE INDEX IF NOT EXISTS operations_by_time ON operations (created_at, seq);
-- The live chain never forks: at most one non-nullified successor per operation, so two
-- conflicting updates cannot both land even if the per-DID lock were bypassed.
CREATE UNIQUE INDEX IF NOT EXISTS operations_one_successor
    ON operations (did, prev) WHERE nullified = 0;
"""
_COLUMNS = "seq, did, operation, cid, nullified, created_at"


@dataclass(frozen=True)
class Append:
    """What a log writer decided: the entry to add and the CIDs it nullifies."""

    entry: LogEntry
    nullifies: tuple[str, ...]


def _entry(row: sqlite3.Row | tuple[Any, ...]) -> tuple[int, LogEntry]:
    seq, did, op, cid, nullified, created = row
    return seq, LogEntry(did, json.loads(op), cid, bool(nullified), parse_timestamp(created))


def _create_schema(conn: sqlite3.Connection) -> None:
    conn.executescript(_SCHEMA)


def _log(conn: sqlite3.Connection, did: str) -> list[LogEntry]:
    rows = conn.execute(f"SELECT {_COLUMNS} FROM operations WHERE did = ? ORDER BY seq", (did,))
    return [_entry(row)[1] for row in rows]


def _append(
    conn: sqlite3.Connection, did: str, decide: Callable[[list[LogEntry]], Append]
) -> Append:
    result = decide(_log(conn, did))
    conn.executemany(
        "UPDATE operations SET nullified = 1 WHERE did = ? AND cid = ?",
        [(did, cid) for cid in result.nullifies],
    )
    entry = result.entry
    conn.execute(
        "INSERT INTO operations (did, cid, prev, operation, nullified, created_at)"
        " VALUES (?, ?, ?, ?, 0, ?)",
        (
            did,
            entry.cid,
            entry.operation.get("prev"),
            json.dumps(entry.operation, separators=(",", ":")),
            format_datetime(entry.created_at),
        ),
    )
    return result


def _export_by_time(conn: sqlite3.Connection, after: str, count: int) -> list[tuple[int, LogEntry]]:
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM operations WHERE created_at > ? ORDER BY created_at, seq LIMIT ?",
        (after, count),
    )
    return [_entry(row) for row in rows]


def _export_by_seq(conn: sqlite3.Connection, after: int, count: int) -> list[tuple[int, LogEntry]]:
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM operations WHERE seq > ? ORDER BY seq LIMIT ?", (after, count)
    )
    return [_entry(row) for row in rows]


class PlcStore:
    """Operation logs in one SQLite file (runtime.sqlite: WAL, a writer and a reader thread,
    each call one transaction in one thread hop)."""

    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    @classmethod
    async def open(cls, path: Path) -> PlcStore:
        db = SqliteDatabase(path, _create_schema, "plc")
        await db.open()
        return cls(db)

    async def close(self) -> None:
        await self._db.close()

    async def log(self, did: str) -> list[LogEntry]:
        """Every operation of `did`, nullified ones included, in the order they were accepted."""
        return await self._db.read(_log, did)

    async def append(self, did: str, decide: Callable[[list[LogEntry]], Append]) -> Append:
        """Run `decide` on the DID's current log and persist its result, in one transaction.

        `decide` runs inside the write transaction, so no other writer can change the log
        between reading it and writing the new operation; if it raises, nothing is written.
        """
        return await self._db.write(_append, did, decide)

    async def export_by_time(self, after: str | None, count: int) -> list[tuple[int, LogEntry]]:
        """Operations accepted strictly after the createdAt `after` (all if None), oldest first."""
        return await self._db.read(_export_by_time, after or "", count)

    async def export_by_seq(self, after: int, count: int) -> list[tuple[int, LogEntry]]:
        """Operations with a sequence number greater than `after`, in sequence order."""
        return await self._db.read(_export_by_seq, after, count)

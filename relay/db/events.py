"""SQL for the relay's event log (relay.db): re-sequenced frames with their state changes."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import NamedTuple


class EventRow(NamedTuple):
    """One event as stored, its fields in the table's column order."""

    seq: int
    did: str
    kind: str
    frame: bytes
    time_ms: int


def head(conn: sqlite3.Connection) -> int:
    """The highest seq ever issued (0 for a new log)."""
    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'event'").fetchone()
    return int(row[0]) if row else 0


def oldest(conn: sqlite3.Connection) -> int | None:
    row = conn.execute("SELECT min(seq) FROM event").fetchone()
    return None if row[0] is None else int(row[0])


def append(conn: sqlite3.Connection, rows: Sequence[EventRow]) -> None:
    conn.executemany(
        "INSERT INTO event (seq, did, kind, frame, time_ms) VALUES (?, ?, ?, ?, ?)", rows
    )


def frames_after(conn: sqlite3.Connection, seq: int, limit: int) -> list[tuple[int, bytes]]:
    rows = conn.execute(
        "SELECT seq, frame FROM event WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit)
    ).fetchall()
    return [(int(row[0]), bytes(row[1])) for row in rows]


def compact(conn: sqlite3.Connection, before_ms: int) -> int:
    """Drop events older than `before_ms` (outside the replay window); returns how many."""
    return conn.execute("DELETE FROM event WHERE time_ms < ?", (before_ms,)).rowcount


def count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT count(*) FROM event").fetchone()[0])

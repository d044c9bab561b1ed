"""The PDS's global event log, `<data>/sequencer.sqlite` (spec-event-stream.md, "Sequence Numbers").

WAL mode, synchronous=NORMAL, checkpoints off the append path (pds.actor_store.wal).
Rows hold each event's complete frame (header + body with its `seq`), encoded once at append
time: replay and live fan-out send the same bytes. AUTOINCREMENT keeps the highest seq ever
issued in sqlite_sequence, so trimming the whole window never lets seq numbers repeat.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pds.actor_store.wal import WalCheckpoints, manual_checkpoints
from runtime.sqlite import connect

SCHEMA = """
CREATE TABLE IF NOT EXISTS event (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    did TEXT NOT NULL,
    kind TEXT NOT NULL,
    rev TEXT,
    frame BLOB NOT NULL,
    time_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS event_did_rev ON event (did, rev);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(frozen=True)
class LogRow:
    seq: int
    did: str
    kind: str
    rev: str | None
    frame: bytes
    time_ms: int


class SequencerDb:
    """All SQL of the event log. Used from one worker thread at a time (the Sequencer's)."""

    def __init__(self, path: Path) -> None:
        self.conn = connect(path)
        manual_checkpoints(self.conn)
        self.conn.executescript(SCHEMA)
        self._checkpoints = WalCheckpoints(path)

    def head(self) -> int:
        """The highest seq ever issued (0 for a new log)."""
        row = self.conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'event'").fetchone()
        return int(row[0]) if row else 0

    def oldest(self) -> int | None:
        row = self.conn.execute("SELECT min(seq) FROM event").fetchone()
        return None if row[0] is None else int(row[0])

    def append(self, rows: Sequence[LogRow]) -> None:
        """Insert a batch in one transaction (a group commit)."""
        with self.conn:
            self.conn.execute("BEGIN")
            self.conn.executemany(
                "INSERT INTO event (seq, did, kind, rev, frame, time_ms) VALUES (?, ?, ?, ?, ?, ?)",
                ((r.seq, r.did, r.kind, r.rev, r.frame, r.time_ms) for r in rows),
            )
        self._checkpoints.committed()

    def has_event(self, did: str, kind: str, rev: str) -> bool:
        row = self.conn.execute(
            "SELECT 1 FROM event WHERE did = ? AND rev = ? AND kind = ?", (did, rev, kind)
        ).fetchone()
        return row is not None

    def frames_after(self, seq: int, limit: int) -> list[tuple[int, bytes]]:
        """Up to `limit` (seq, frame) pairs with seq above `seq`, in order."""
        rows = self.conn.execute(
            "SELECT seq, frame FROM event WHERE seq > ? ORDER BY seq LIMIT ?",
            (seq, limit),
        ).fetchall()
        return [(row[0], row[1]) for row in rows]

    def trim(self, before_ms: int) -> int:
        """Delete events older than `before_ms`; returns how many went."""
        with self.conn:
            self.conn.execute("BEGIN")
            cur = self.conn.execute("DELETE FROM event WHERE time_ms < ?", (before_ms,))
        return cur.rowcount

    def get_meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self.conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def close(self) -> None:
        self.conn.close()

"""The per-account SQLite schema (one file per DID, as the reference PDS's actor store)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from pds.actor_store.wal import manual_checkpoints

# Blocks, records and the root are written in one transaction per commit; `rev` on blocks and
# records answers `getRepo?since=` and record listings without walking the MST.
SCHEMA = """
CREATE TABLE IF NOT EXISTS repo_root (
    did TEXT PRIMARY KEY,
    cid BLOB NOT NULL,
    rev TEXT NOT NULL,
    data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS block (
    cid BLOB PRIMARY KEY,
    bytes BLOB NOT NULL,
    rev TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS block_rev ON block (rev);
CREATE TABLE IF NOT EXISTS record (
    collection TEXT NOT NULL,
    rkey TEXT NOT NULL,
    cid BLOB NOT NULL,
    rev TEXT NOT NULL,
    indexed_at TEXT NOT NULL,
    PRIMARY KEY (collection, rkey)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS record_cid ON record (cid);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    rev TEXT NOT NULL,
    frame BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS blob (
    cid BLOB PRIMARY KEY,
    mime TEXT NOT NULL,
    size INTEGER NOT NULL,
    temp_key TEXT,
    created_at TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS record_blob (
    blob_cid BLOB NOT NULL,
    record_path TEXT NOT NULL,
    PRIMARY KEY (blob_cid, record_path)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS record_blob_path ON record_blob (record_path);
"""


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating if needed) an actor database; autocommit mode, WAL, foreign threads ok.

    `check_same_thread` is off because connections are used from a worker pool, one call at a
    time under a lock held by the owning ActorStore.
    """
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    # NORMAL in WAL mode survives a process crash (kill -9); only an OS crash can lose the tail.
    conn.execute("PRAGMA synchronous=NORMAL")
    manual_checkpoints(conn)  # the store's WalCheckpoints runs them off the commit path
    conn.execute("PRAGMA busy_timeout=5000")
    conn.executescript(SCHEMA)
    return conn

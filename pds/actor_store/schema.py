"""The per-account SQLite schema (one file per DID, as the reference PDS's actor store)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from pds.actor_store.wal import manual_checkpoints
from runtime import sqlite as runtime_sqlite

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
    """Open (creating if needed) an actor database: runtime.sqlite's WAL connection, its
    checkpoints left to the store's WalCheckpoints (off the commit path)."""
    conn = runtime_sqlite.connect(path)
    manual_checkpoints(conn)
    conn.executescript(SCHEMA)
    return conn

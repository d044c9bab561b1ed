"""WAL checkpoints off the commit path: writers never checkpoint, a background thread does."""

from __future__ import annotations

import shutil
import sqlite3
import time
from pathlib import Path

from pds.actor_store.schema import connect
from pds.actor_store.wal import WalCheckpoints


def rows_in_main_file(db: Path, tmp_path: Path) -> int:
    """Rows visible from the database file alone, i.e. what checkpoints copied out of the WAL."""
    copy = tmp_path / "copy.sqlite"
    shutil.copyfile(db, copy)
    conn = sqlite3.connect(copy)
    try:
        if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'record'").fetchone() is None:
            return 0  # not even the schema left the WAL yet
        return int(conn.execute("SELECT count(*) FROM record").fetchone()[0])
    finally:
        conn.close()


def test_checkpoints_run_in_the_background_every_n_commits(tmp_path: Path) -> None:
    db = tmp_path / "store.sqlite"
    conn = connect(db)
    assert conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    checkpoints = WalCheckpoints(db, every=5)

    def commit(i: int) -> None:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "INSERT INTO record (collection, rkey, cid, rev, indexed_at) VALUES (?, ?, ?, ?, ?)",
            ("c", f"k{i}", b"x" * 36, "r", "t"),
        )
        conn.execute("COMMIT")
        checkpoints.committed()

    for i in range(4):
        commit(i)
    time.sleep(0.2)
    assert rows_in_main_file(db, tmp_path) == 0  # still only in the WAL
    commit(4)
    deadline = time.monotonic() + 5
    while rows_in_main_file(db, tmp_path) < 5 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert rows_in_main_file(db, tmp_path) == 5
    conn.close()


def test_a_deleted_database_is_not_recreated(tmp_path: Path) -> None:
    db = tmp_path / "did:plc:abc%20" / "store.sqlite"
    db.parent.mkdir()
    connect(db).close()
    checkpoints = WalCheckpoints(db, every=1)
    db.unlink()
    checkpoints.committed()
    time.sleep(0.2)
    assert not db.exists()

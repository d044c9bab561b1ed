"""SQLite WAL checkpoints off the commit path (sqlite.org/wal.html, "Checkpointing").

In WAL mode with synchronous=NORMAL a commit appends to the WAL without an fsync: it survives a
process crash (kill -9), and only an OS crash or power cut can lose the latest commits. The
fsyncs happen at checkpoints, which SQLite by default runs inside whichever commit crosses
1000 WAL pages: on this machine that commit then takes 20-150 ms instead of ~0.1 ms, a
latency spike for every writer queued behind it. So writer connections turn automatic
checkpoints off, and `WalCheckpoints` runs a PASSIVE checkpoint (it never blocks writers or
readers) on a connection of its own in a background thread every `every` commits (a commit
writes a few pages, so this stays near SQLite's default WAL size). Durability is unchanged:
what a commit makes durable is decided by the WAL.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from contextlib import closing
from pathlib import Path
from urllib.parse import quote

log = logging.getLogger("pds.wal")

# Commits between checkpoints: a repo commit writes ~5-10 pages, SQLite's default is 1000.
CHECKPOINT_EVERY = 200


def manual_checkpoints(conn: sqlite3.Connection) -> None:
    """Stop `conn`'s commits from running checkpoints (WalCheckpoints runs them)."""
    conn.execute("PRAGMA wal_autocheckpoint=0")


class WalCheckpoints:
    """Checkpoints one database's WAL in the background once it is large enough."""

    def __init__(self, path: Path, every: int = CHECKPOINT_EVERY) -> None:
        self.path = path
        self.every = every
        self._commits = 0
        self._running = threading.Lock()

    def committed(self) -> None:
        """Called after each write transaction (under the writer's lock); starts a checkpoint
        when one is due and none is running."""
        self._commits += 1
        if self._commits >= self.every and self._running.acquire(blocking=False):
            self._commits = 0
            threading.Thread(target=self._run, name="wal-checkpoint", daemon=True).start()

    def _run(self) -> None:
        try:
            # mode=rw: a database deleted meanwhile (account deletion) is not re-created.
            uri = f"file:{quote(str(self.path))}?mode=rw"
            with closing(sqlite3.connect(uri, timeout=5, uri=True)) as conn:
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error as exc:  # the next commit past the threshold tries again
            if os.path.exists(self.path):
                log.warning("WAL checkpoint of %s failed: %s", self.path, exc)
        finally:
            self._running.release()

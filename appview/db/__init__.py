"""The appview's store: SQLite at `<data>/appview.sqlite` by default, PostgreSQL when
BSKY_DB_POSTGRES_URL is set (in BSKY_DB_POSTGRES_SCHEMA). All its SQL lives in this package,
written once for both (appview.db.index writes, appview.db.reads and .skeletons read), the
schema in appview.db.schema and the few differences in appview.db.dialect. Callers hand a
function of the connection to `write` (the writer thread: ingest's batches, updateSeen) or
`read` (a reader thread: the read API), each call one transaction."""

from __future__ import annotations

import functools
import sqlite3
from typing import Final

from appview.config import AppviewConfig
from appview.db.dialect import POSTGRES, SQLITE
from appview.db.schema import check_version, migrate
from runtime import postgres
from runtime.postgres import PostgresDatabase
from runtime.sqlite import SqliteDatabase

Database = SqliteDatabase | PostgresDatabase
# The read API's SQLite reader maps the file (runtime.sqlite.SqliteDatabase): a 50-item
# timeline's skeleton and hydration read a few hundred pages, ~20% less CPU mapped.
READ_MMAP_BYTES: Final = 1 << 34
# The writer's page cache (PRAGMA cache_size, in KiB when negative): the indexer's inserts land
# all over the URI-keyed indexes, and with SQLite's default 2 MiB a batch re-reads the pages
# it evicted (~15% of the writer's CPU per record at a 20 MB index).
WRITE_CACHE_KIB: Final = 65_536
# Pages the write-ahead log grows to before the writer copies it into the file (PRAGMA
# wal_autocheckpoint; SQLite's default is 1,000): a page the indexer rewrites in many batches
# is copied once per checkpoint, so fewer, larger checkpoints copy less (~15% of the writer's
# CPU per record, checkpoints included, at 4,000: a 16 MB log).
WAL_CHECKPOINT_PAGES: Final = 4_000


def open_database(config: AppviewConfig) -> Database:
    """The configured store, not yet opened (`await db.open()` migrates it)."""
    if config.postgres_url is not None:
        prepare = functools.partial(migrate, dialect=POSTGRES)
        return PostgresDatabase(config.postgres_url, config.postgres_schema, prepare, "appview")
    return SqliteDatabase(
        config.db_path,
        _prepare_writer,
        "appview",
        read_mmap_bytes=READ_MMAP_BYTES,
    )


def _prepare_writer(conn: sqlite3.Connection) -> None:
    conn.execute(f"PRAGMA cache_size = -{WRITE_CACHE_KIB}")
    conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_CHECKPOINT_PAGES}")
    migrate(conn, SQLITE)


def schema_version(config: AppviewConfig) -> int:
    """The stored schema's version (0 before the first start); SchemaTooNew when newer code
    wrote it."""
    if config.postgres_url is not None:
        conn = postgres.connect(config.postgres_url, config.postgres_schema)
        try:
            return check_version(conn, POSTGRES)
        finally:
            conn.close()
    if not config.db_path.exists():
        return 0
    lite = sqlite3.connect(config.db_path)
    try:
        return check_version(lite, SQLITE)
    finally:
        lite.close()

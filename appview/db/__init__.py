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


def open_database(config: AppviewConfig) -> Database:
    """The configured store, not yet opened (`await db.open()` migrates it)."""
    if config.postgres_url is not None:
        prepare = functools.partial(migrate, dialect=POSTGRES)
        return PostgresDatabase(config.postgres_url, config.postgres_schema, prepare, "appview")
    return SqliteDatabase(
        config.db_path,
        functools.partial(migrate, dialect=SQLITE),
        "appview",
        read_mmap_bytes=READ_MMAP_BYTES,
    )


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

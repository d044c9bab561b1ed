"""SQLite as the services use it: WAL connections, and one writer and one reader thread where
each handed-over call is one transaction (DESIGN.md, "Dependencies": batch each transaction
into one worker-thread call)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from runtime.sql import transaction

P = ParamSpec("P")
T = TypeVar("T")
Query = Callable[Concatenate[sqlite3.Connection, P], T]


def connect(path: Path) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL, foreign keys on."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=5000")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def add_columns(conn: sqlite3.Connection, columns: Sequence[tuple[str, str, str]]) -> None:
    """Add each (table, column, declaration) its table lacks: a table made by an older version
    keeps its old columns under `CREATE TABLE IF NOT EXISTS`."""
    for table, column, declaration in columns:
        present = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        if column not in present:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")


class SqliteDatabase:
    """The writer and reader connections and their threads; `prepare(conn)` runs on the
    writer's connection when it opens (schema, migrations) and may raise to refuse the file.
    With `read_mmap_bytes`, up to that much of the file is memory-mapped for the reader
    (PRAGMA mmap_size, capped by SQLite's build): pages it reads come from the OS page cache
    without a system call and a copy each, for read APIs that load many rows a request."""

    # What a failed call may raise that leaves nothing of its transaction applied.
    errors: tuple[type[Exception], ...] = (sqlite3.Error,)

    def __init__(
        self,
        path: Path,
        prepare: Callable[[sqlite3.Connection], None],
        name: str,
        *,
        read_mmap_bytes: int = 0,
    ) -> None:
        self.path = path
        self.name = name
        self.read_mmap_bytes = read_mmap_bytes
        self._prepare = prepare
        self._write_thread = ThreadPoolExecutor(1, thread_name_prefix=f"{name}-db-write")
        self._read_thread = ThreadPoolExecutor(1, thread_name_prefix=f"{name}-db-read")
        self._writer: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        loop = asyncio.get_running_loop()
        self._writer = await loop.run_in_executor(self._write_thread, self._open_writer)
        self._reader = await loop.run_in_executor(self._read_thread, self._open_reader)

    def _open_writer(self) -> sqlite3.Connection:
        conn = connect(self.path)
        try:
            self._prepare(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _open_reader(self) -> sqlite3.Connection:
        conn = connect(self.path)
        if self.read_mmap_bytes:
            conn.execute(f"PRAGMA mmap_size={int(self.read_mmap_bytes)}")
        return conn

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        if self._writer is not None:
            await loop.run_in_executor(self._write_thread, self._writer.close)
            self._writer = None
        if self._reader is not None:
            await loop.run_in_executor(self._read_thread, self._reader.close)
            self._reader = None
        self._write_thread.shutdown(wait=True)
        self._read_thread.shutdown(wait=True)

    async def write(self, fn: Query[P, T], *args: Any) -> T:
        """Run `fn(conn, *args)` as one transaction on the writer thread. It takes the write
        lock at BEGIN (IMMEDIATE): another process writing the same file (an admin command)
        then makes it wait out busy_timeout instead of failing a read-then-write part way."""
        conn = self._require(self._writer)
        return await asyncio.get_running_loop().run_in_executor(
            self._write_thread, transaction, conn, fn, args, "BEGIN IMMEDIATE"
        )

    async def read(self, fn: Query[P, T], *args: Any) -> T:
        """Run `fn(conn, *args)` on the reader thread (a consistent snapshot)."""
        conn = self._require(self._reader)
        return await asyncio.get_running_loop().run_in_executor(
            self._read_thread, transaction, conn, fn, args
        )

    def _require(self, conn: sqlite3.Connection | None) -> sqlite3.Connection:
        if conn is None:
            raise RuntimeError(f"the {self.name} database is not open")
        return conn

"""The relay's SQLite store, `<data>/relay.sqlite`: every SQL statement lives in this package.

One thread writes and one reads, each with its own connection (WAL lets replays and listings
read while the writer commits). Each call handed to a thread is one transaction: the callers
pass a function of the connection (from relay.db.hosts, .accounts, .events), never SQL.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from relay.db.schema import SCHEMA

P = ParamSpec("P")
T = TypeVar("T")
Query = Callable[Concatenate[sqlite3.Connection, P], T]


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=5000")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


class Database:
    """The writer and reader connections and their threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._write_thread = ThreadPoolExecutor(1, thread_name_prefix="relay-db-write")
        self._read_thread = ThreadPoolExecutor(1, thread_name_prefix="relay-db-read")
        self._writer: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        loop = asyncio.get_running_loop()
        self._writer = await loop.run_in_executor(self._write_thread, self._open_writer)
        self._reader = await loop.run_in_executor(self._read_thread, connect, self.path)

    def _open_writer(self) -> sqlite3.Connection:
        conn = connect(self.path)
        conn.executescript(SCHEMA)
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
        """Run `fn(conn, *args)` as one transaction on the writer thread."""
        conn = self._require(self._writer)
        return await asyncio.get_running_loop().run_in_executor(
            self._write_thread, _transaction, conn, fn, args
        )

    async def read(self, fn: Query[P, T], *args: Any) -> T:
        """Run `fn(conn, *args)` on the reader thread (a consistent snapshot)."""
        conn = self._require(self._reader)
        return await asyncio.get_running_loop().run_in_executor(
            self._read_thread, _transaction, conn, fn, args
        )

    @staticmethod
    def _require(conn: sqlite3.Connection | None) -> sqlite3.Connection:
        if conn is None:
            raise RuntimeError("the relay database is not open")
        return conn


def _transaction(conn: sqlite3.Connection, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
    conn.execute("BEGIN")
    try:
        result = fn(conn, *args)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return result

"""PostgreSQL as the services use it (DESIGN.md, "Services": the appview's store beyond one
machine), behind runtime.sqlite's interface: statements written once, with `?` placeholders,
run unchanged on either database.

psycopg 3's synchronous API runs on the same kind of threads as SQLite: one writer connection,
and a few reader connections so that a read waiting on the server does not hold up the others.
Each call handed to a thread is one transaction; reads see one snapshot (REPEATABLE READ, READ
ONLY), as a SQLite read transaction does. Every connection works in the service's own schema
(`search_path`), so several services, or tests, share one database without seeing each other.
A connection the server dropped is opened again on its next call.
"""

from __future__ import annotations

import asyncio
import functools
import queue
import re
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final, TypeVar

import psycopg
from psycopg import sql

from runtime.sql import Connection, transaction

T = TypeVar("T")

READERS: Final = 4
READ: Final = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY"
# The reference appview's rule for BSKY_DB_POSTGRES_SCHEMA, with digits allowed after the first.
SCHEMA_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_QUOTES: Final = "'\""


@functools.lru_cache(maxsize=4096)
def to_pyformat(statement: str) -> str:
    """`?` placeholders as psycopg's `%s`, and a literal `%` doubled; quoted text and quoted
    names keep their `?`. Cached: a service runs the same few statements over and over."""
    out = []
    quote = ""
    for char in statement:
        if quote:
            quote = "" if char == quote else quote
        elif char in _QUOTES:
            quote = char
        if char == "%":
            out.append("%%")
        elif char == "?" and not quote:
            out.append("%s")
        else:
            out.append(char)
    return "".join(out)


class PgConnection:
    """A psycopg connection with sqlite3's calling convention (runtime.sql.Connection): rows
    are tuples, and each `execute` returns its own cursor, so results can be read while the
    next statement runs."""

    def __init__(self, raw: psycopg.Connection[Any]) -> None:
        self.raw = raw

    def execute(self, statement: str, parameters: Sequence[Any] = (), /) -> psycopg.Cursor[Any]:
        # Always with parameters (even none): psycopg then reads `%%` as one `%`.
        return self.raw.execute(to_pyformat(statement), parameters)

    def executemany(self, statement: str, parameters: Iterable[Sequence[Any]], /) -> None:
        with self.raw.cursor() as cursor:
            cursor.executemany(to_pyformat(statement), parameters)

    def close(self) -> None:
        self.raw.close()


def connect(url: str, schema: str) -> PgConnection:
    """A connection in autocommit mode (transactions are explicit) working in `schema`, which
    it creates when missing."""
    if not SCHEMA_NAME.fullmatch(schema):
        raise ValueError(f"bad PostgreSQL schema name {schema!r}")
    raw = psycopg.connect(url, autocommit=True)
    try:
        name = sql.Identifier(schema)
        raw.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(name))
        raw.execute(sql.SQL("SET search_path TO {}").format(name))
    except BaseException:
        raw.close()
        raise
    return PgConnection(raw)


class PostgresDatabase:
    """runtime.sqlite.SqliteDatabase's interface over the database at `url`, in `schema`;
    `prepare(conn)` runs on the writer's connection when it opens (migrations) and may raise
    to refuse the database."""

    errors: tuple[type[Exception], ...] = (psycopg.Error,)

    def __init__(
        self, url: str, schema: str, prepare: Callable[[Connection], None], name: str
    ) -> None:
        self.url = url
        self.schema = schema
        self.name = name
        self._prepare = prepare
        self._write_thread = ThreadPoolExecutor(1, thread_name_prefix=f"{name}-pg-write")
        self._read_threads = ThreadPoolExecutor(READERS, thread_name_prefix=f"{name}-pg-read")
        self._writer: PgConnection | None = None
        self._readers: queue.SimpleQueue[PgConnection] = queue.SimpleQueue()
        self._opened = 0

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        self._writer = await loop.run_in_executor(self._write_thread, self._open_writer)
        for _ in range(READERS):
            reader = await loop.run_in_executor(self._read_threads, self._connect)
            self._readers.put(reader)
            self._opened += 1

    def _connect(self) -> PgConnection:
        return connect(self.url, self.schema)

    def _open_writer(self) -> PgConnection:
        conn = self._connect()
        try:
            self._prepare(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        if self._writer is not None:
            await loop.run_in_executor(self._write_thread, self._writer.close)
            self._writer = None
        for _ in range(self._opened):
            await loop.run_in_executor(self._read_threads, self._readers.get().close)
        self._opened = 0
        self._write_thread.shutdown(wait=True)
        self._read_threads.shutdown(wait=True)

    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(conn, *args)` as one transaction on the writer thread."""
        if self._writer is None:
            raise RuntimeError(f"the {self.name} database is not open")
        return await asyncio.get_running_loop().run_in_executor(
            self._write_thread, self._write, fn, args
        )

    def _write(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        """In pipeline mode: statements whose results are not read go out without waiting for
        the server's answer to the one before (a write transaction is mostly such)."""
        assert self._writer is not None
        self._writer = writer = self._alive(self._writer)
        try:
            with writer.raw.pipeline():
                return transaction(writer, fn, args)
        except psycopg.Error:
            # A failed pipeline may have skipped the ROLLBACK: end the transaction here.
            if writer.raw.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                writer.raw.execute("ROLLBACK")
            raise

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(conn, *args)` on a reader thread, in one snapshot."""
        if self._opened == 0:
            raise RuntimeError(f"the {self.name} database is not open")
        return await asyncio.get_running_loop().run_in_executor(
            self._read_threads, self._read, fn, args
        )

    def _read(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        conn = self._readers.get()
        try:
            conn = self._alive(conn)
            return transaction(conn, fn, args, READ)
        finally:
            self._readers.put(conn)

    def _alive(self, conn: PgConnection) -> PgConnection:
        """`conn`, or a new connection when the server dropped it (a restart, a failover)."""
        if not conn.raw.broken:
            return conn
        conn.close()
        return self._connect()

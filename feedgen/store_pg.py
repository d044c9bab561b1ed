"""The feed generator's store on PostgreSQL (FEEDGEN_DATABASE_URL): feedgen.store's tables and
statements, for feeds that outgrow one machine's SQLite (DESIGN.md, "Services").

One connection writes, on its own thread, each batch in one transaction with the position it
reaches, as on SQLite. Reads go to a few connections on reader threads (a round trip to the
server would stall the event loop), each call one read-only transaction.
"""

from __future__ import annotations

import asyncio
import queue
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Final, TypeVar

import psycopg

from feedgen.store import SCHEMA, Batch, SqlReader, write_batch

T = TypeVar("T")

READERS: Final = 4
MARK: Final = "%s"


class PgStore:
    """feedgen.store.Store's interface over a PostgreSQL database at `url`."""

    def __init__(self, url: str, source: str) -> None:
        self.url = url
        self.source = source
        self._write_thread = ThreadPoolExecutor(1, thread_name_prefix="feedgen-pg-write")
        self._read_threads = ThreadPoolExecutor(READERS, thread_name_prefix="feedgen-pg-read")
        self._writer: psycopg.Connection | None = None
        self._readers: queue.SimpleQueue[psycopg.Connection] = queue.SimpleQueue()
        self._opened: list[psycopg.Connection] = []

    async def open(self) -> None:
        self._writer = await self._on(self._write_thread, self._open_writer)
        for _ in range(READERS):
            conn = await self._on(self._read_threads, self._connect)
            self._opened.append(conn)
            self._readers.put(conn)

    def _connect(self) -> psycopg.Connection:
        return psycopg.connect(self.url, autocommit=True)

    def _open_writer(self) -> psycopg.Connection:
        conn = self._connect()
        with conn.transaction():
            conn.execute(SCHEMA)
        return conn

    async def close(self) -> None:
        if self._writer is not None:
            await self._on(self._write_thread, self._writer.close)
        for conn in self._opened:
            await self._on(self._read_threads, conn.close)
        self._write_thread.shutdown(wait=True)
        self._read_threads.shutdown(wait=True)
        self._writer, self._opened = None, []

    def position(self) -> int | None:
        """Where the subscription stopped, or None before its first batch."""
        return SqlReader(self._require(self._writer), MARK).position(self.source)

    async def write(self, batch: Batch) -> None:
        """Apply `batch` and move the cursor, in one transaction."""
        await self._on(self._write_thread, self._write, batch)

    def _write(self, batch: Batch) -> None:
        conn = self._require(self._writer)
        with conn.transaction(), conn.cursor() as cur:
            write_batch(cur, batch, self.source, MARK)

    async def read(self, fn: Callable[[SqlReader], T]) -> T:
        """Run `fn(reader)` on a reader thread, in one snapshot."""

        def run() -> T:
            conn = self._readers.get()
            try:
                with conn.transaction():
                    return fn(SqlReader(conn, MARK))
            finally:
                self._readers.put(conn)

        return await self._on(self._read_threads, run)

    @staticmethod
    def _require(conn: psycopg.Connection | None) -> psycopg.Connection:
        if conn is None:
            raise RuntimeError("the feed store is not open")
        return conn

    @staticmethod
    async def _on(thread: ThreadPoolExecutor, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(thread, fn, *args)

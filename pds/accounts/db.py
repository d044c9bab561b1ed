"""The account database: one SQLite file, each transaction one call on a dedicated thread.

DESIGN.md measured a thread hop per statement as the cost that matters, so a store method
hands a whole transaction (a plain function over the connection) to `transact` or `read`.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


class Database:
    """A WAL-mode SQLite connection owned by one worker thread."""

    def __init__(self, conn: sqlite3.Connection, executor: ThreadPoolExecutor) -> None:
        self._conn = conn
        self._executor = executor

    @classmethod
    async def open(
        cls, path: Path, schema: str, columns: Sequence[tuple[str, str, str]] = ()
    ) -> Database:
        """Open (creating) the database; `columns` are (table, column, declaration) added to
        tables made by an older version, since `CREATE TABLE IF NOT EXISTS` leaves those be."""
        path.parent.mkdir(parents=True, exist_ok=True)
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"sqlite-{path.stem}")

        def connect() -> sqlite3.Connection:
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=5000")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.executescript(schema)
            for table, column, declaration in columns:
                present = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
                if column not in present:
                    conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
            return conn

        conn = await asyncio.get_running_loop().run_in_executor(executor, connect)
        return cls(conn, executor)

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._executor, self._conn.close)
        self._executor.shutdown()

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn` (reads only) on the database thread."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, self._conn)

    async def transact(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn` in one write transaction on the database thread; rolled back if it raises."""

        def transaction(conn: sqlite3.Connection) -> T:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result

        return await self.read(transaction)

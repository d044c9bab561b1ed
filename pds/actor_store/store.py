"""One account's store: a SQLite file used from a worker pool, one call per transaction.

DESIGN.md measured one await per transaction as the fast path, so readers and writers hand a
whole function to `read`/`transact`, which runs it in a worker thread on the connection.
Reads use their own WAL connection so they never wait behind a commit.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Executor
from pathlib import Path
from typing import TypeVar

from atcore.cid import CID
from atcore.keys import PrivateKey
from atcore.mst.store import NodeStore
from pds.actor_store.schema import connect
from pds.actor_store.sql import ActorSql
from pds.actor_store.wal import WalCheckpoints
from runtime import sqlite as runtime_sqlite

T = TypeVar("T")

# Decoded MST nodes kept per open account: the upper levels of a large repo plus recent paths.
NODE_CACHE_SIZE = 20_000


class StagedBlocks:
    """The writer's BlockStore: reads fall through to the database, writes stay in memory.

    A commit's MST edits land here; the repo writer then stores exactly the blocks its new
    tree reaches, in the commit's transaction. `reset` starts the next commit.
    """

    def __init__(self, base: ActorSql) -> None:
        self.base = base
        self.new: dict[CID, bytes] = {}

    def get(self, cid: CID) -> bytes:
        data = self.new.get(cid)
        return self.base.get(cid) if data is None else data

    def has(self, cid: CID) -> bool:
        return cid in self.new or self.base.has(cid)

    def put(self, cid: CID, data: bytes) -> None:
        self.new[cid] = data

    def reset(self) -> None:
        self.new = {}


class Txn:
    """What a transaction function receives: the SQL, and MST nodes over staged blocks."""

    def __init__(self, sql: ActorSql, staged: StagedBlocks, nodes: NodeStore) -> None:
        self.sql = sql
        self.staged = staged
        self.nodes = nodes


class ActorStore:
    """The open database of one DID."""

    def __init__(self, did: str, path: Path, pool: Executor) -> None:
        self.did = did
        self.path = path
        self._pool = pool
        self._writer = connect(path)
        self._checkpoints = WalCheckpoints(path)
        self._reader = runtime_sqlite.connect(path)
        self._write_lock = threading.Lock()
        self._read_lock = threading.Lock()
        writer_sql = ActorSql(self._writer)
        self._staged = StagedBlocks(writer_sql)
        self._txn = Txn(writer_sql, self._staged, NodeStore(self._staged, NODE_CACHE_SIZE))
        self._read_sql = ActorSql(self._reader)
        # Outbox rows up to this id are in the global log; the next commit deletes them.
        self.sequenced_upto = 0
        self.signing_key: PrivateKey | None = None  # read once from its file

    def run(self, fn: Callable[[], T]) -> asyncio.Future[T]:
        """Run `fn` in a worker thread (it may call `transact_sync`: a whole write, one hop)."""
        return asyncio.get_running_loop().run_in_executor(self._pool, fn)

    async def read(self, fn: Callable[[ActorSql], T]) -> T:
        """Run `fn` on the read connection in a worker thread (one consistent snapshot)."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._read_sync, fn)

    async def transact(self, fn: Callable[[Txn], T]) -> T:
        """Run `fn` in one write transaction in a worker thread; any exception rolls it back."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self.transact_sync, fn)

    def _read_sync(self, fn: Callable[[ActorSql], T]) -> T:
        with self._read_lock:
            self._reader.execute("BEGIN")
            try:
                return fn(self._read_sql)
            finally:
                self._reader.execute("COMMIT")

    def transact_sync(self, fn: Callable[[Txn], T]) -> T:
        with self._write_lock:
            self._staged.reset()
            self._writer.execute("BEGIN IMMEDIATE")
            try:
                result = fn(self._txn)
            except BaseException:
                self._writer.execute("ROLLBACK")
                raise
            finally:
                self._staged.reset()
            self._writer.execute("COMMIT")
            self._checkpoints.committed()
            return result

    async def snapshot(self) -> Snapshot:
        """A read transaction of its own, for long reads (streamed exports) spanning awaits."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, Snapshot, self.path, self._pool)

    def close(self) -> None:
        with self._write_lock, self._read_lock:
            self._reader.close()
            self._writer.close()


class Snapshot:
    """A dedicated connection holding one read transaction until `close` (WAL keeps it valid)."""

    def __init__(self, path: Path, pool: Executor) -> None:
        self._pool = pool
        self._conn = runtime_sqlite.connect(path)
        self._conn.execute("BEGIN")
        self.sql = ActorSql(self._conn)
        self._lock = threading.Lock()

    async def run(self, fn: Callable[[ActorSql], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._locked, fn)

    def _locked(self, fn: Callable[[ActorSql], T]) -> T:
        with self._lock:
            return fn(self.sql)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

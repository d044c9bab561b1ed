"""The feed generator's store: every SQL statement of the SDK, and its SQLite home,
`<data>/feedgen.sqlite` (feedgen.store_pg runs the same statements on PostgreSQL).

Three tables: `item` holds the records a feed selected (`in_feed` 1, with their rank) or kept
for its personalised function (`in_feed` 0, ranked by arrival), with the record's subject when
it has one; `hidden` the accounts not active (taken down, suspended, deactivated), whose
records skeletons leave out until they are active again; `subscription` holds the
subscription's position, written in the same transaction as the items it covers, so a restart
resumes exactly where the last commit left off (WAL, one writer thread, as relay.db does;
reads run inline, see Store.read).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol, TypeVar

from feedgen.sdk import Page, Ranked

T = TypeVar("T")

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS item (
    uri TEXT PRIMARY KEY,
    did TEXT NOT NULL,
    collection TEXT NOT NULL,
    subject TEXT,
    rank DOUBLE PRECISION NOT NULL,
    in_feed SMALLINT NOT NULL
);
CREATE INDEX IF NOT EXISTS item_feed ON item (rank DESC, uri DESC) WHERE in_feed = 1;
CREATE INDEX IF NOT EXISTS item_author ON item (collection, did, rank DESC);
CREATE INDEX IF NOT EXISTS item_did ON item (did);
CREATE TABLE IF NOT EXISTS subscription (source TEXT PRIMARY KEY, position BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS hidden (did TEXT PRIMARY KEY);
"""
# The same statements run on SQLite and PostgreSQL (feedgen.store_pg): `?` is the parameter
# mark, rewritten for drivers that use another.
UPSERT_ITEM: Final = (
    "INSERT INTO item VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (uri) DO UPDATE SET"
    " did = excluded.did, collection = excluded.collection, subject = excluded.subject,"
    " rank = excluded.rank, in_feed = excluded.in_feed"
)
UPSERT_POSITION: Final = (
    "INSERT INTO subscription VALUES (?, ?)"
    " ON CONFLICT (source) DO UPDATE SET position = excluded.position"
)
# Records of hidden accounts, and subjects (a URI, or a DID) of them, are left out of pages.
VISIBLE: Final = "did NOT IN (SELECT did FROM hidden)"
VISIBLE_SUBJECT: Final = (
    "NOT EXISTS (SELECT 1 FROM hidden WHERE subject = hidden.did"
    " OR substr(subject, 1, length(hidden.did) + 6) = 'at://' || hidden.did || '/')"
)
# Personalised reads take at most this many authors (SQLite's bound on one statement's
# variables is 32,766; a viewer following more is read as following the newest follows).
MAX_AUTHORS: Final = 5_000


@dataclass(frozen=True, slots=True)
class Item:
    uri: str
    did: str
    collection: str
    subject: str | None
    rank: float
    in_feed: bool


@dataclass
class Batch:
    """What one transaction writes: items to store, URIs and accounts to forget, the cursor,
    and accounts hidden (False) or shown again (True), in the order they came."""

    puts: list[Item]
    deletes: list[str]
    accounts_gone: list[str]
    position: int | None = None
    statuses: list[tuple[str, bool]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.puts) + len(self.deletes) + len(self.accounts_gone) + len(self.statuses)


class FeedStore(Protocol):
    """What the indexer and the API use of a store: Store (SQLite) or store_pg.PgStore."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    def position(self) -> int | None: ...

    async def write(self, batch: Batch) -> None: ...

    async def read(self, fn: Callable[[SqlReader], T]) -> T: ...


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=5000")
    return conn


class Store:
    """The writer and reader connections and their threads."""

    def __init__(self, path: Path, source: str) -> None:
        self.path = path
        self.source = source
        self._write_thread = ThreadPoolExecutor(1, thread_name_prefix="feedgen-write")
        self._writer: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = await self._on(self._write_thread, self._open_writer)
        self._reader = connect(self.path)

    def _open_writer(self) -> sqlite3.Connection:
        conn = connect(self.path)
        conn.executescript(SCHEMA)
        return conn

    async def close(self) -> None:
        if self._writer is not None:
            await self._on(self._write_thread, self._writer.close)
        self._write_thread.shutdown(wait=True)
        if self._reader is not None:
            self._reader.close()
        self._writer = self._reader = None

    def position(self) -> int | None:
        """Where the subscription stopped, or None before its first batch."""
        return SqlReader(self._conn(self._reader)).position(self.source)

    async def write(self, batch: Batch) -> None:
        """Apply `batch` and move the cursor, in one transaction."""
        await self._on(self._write_thread, self._write, batch)

    def _write(self, batch: Batch) -> None:
        conn = self._conn(self._writer)
        conn.execute("BEGIN IMMEDIATE")
        try:
            write_batch(conn, batch, self.source)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    async def read(self, fn: Callable[[SqlReader], T]) -> T:
        """Run `fn(reader)` in one snapshot, on the calling (event loop) thread.

        A skeleton page is an index range scan of well under a millisecond, and WAL readers
        never wait for the writer; handing it to a thread instead costs more than the query
        (the GIL's 5 ms switch interval: bench/feedgen.py measured p50 6 ms that way).
        """
        conn = self._conn(self._reader)
        conn.execute("BEGIN")
        try:
            return fn(SqlReader(conn))
        finally:
            conn.execute("COMMIT")

    @staticmethod
    def _conn(conn: sqlite3.Connection | None) -> sqlite3.Connection:
        if conn is None:
            raise RuntimeError("the feed store is not open")
        return conn

    @staticmethod
    async def _on(thread: ThreadPoolExecutor, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(thread, fn, *args)


def write_batch(conn: Any, batch: Batch, source: str, mark: str = "?") -> None:
    """The statements of one batch, inside the caller's transaction (`conn`: a DB-API
    connection or cursor; `mark`: its parameter mark)."""
    rows = [(i.uri, i.did, i.collection, i.subject, i.rank, int(i.in_feed)) for i in batch.puts]
    conn.executemany(UPSERT_ITEM.replace("?", mark), rows)
    delete = "DELETE FROM item WHERE uri = ?".replace("?", mark)
    conn.executemany(delete, [(uri,) for uri in batch.deletes])
    gone = "DELETE FROM item WHERE did = ?".replace("?", mark)
    conn.executemany(gone, [(did,) for did in batch.accounts_gone])
    hide = "INSERT INTO hidden VALUES (?) ON CONFLICT (did) DO NOTHING".replace("?", mark)
    show = "DELETE FROM hidden WHERE did = ?".replace("?", mark)
    for did, active in batch.statuses:
        conn.execute(show if active else hide, (did,))
    if batch.position is not None:
        conn.execute(UPSERT_POSITION.replace("?", mark), (source, batch.position))


class SqlReader:
    """feedgen.sdk.Reader over one DB-API connection whose parameter mark is `mark`."""

    def __init__(self, conn: Any, mark: str = "?") -> None:
        self._conn = conn
        self._mark = mark

    def _rows(self, sql: str, args: Sequence[Any]) -> list[Any]:
        return list(self._conn.execute(sql.replace("?", self._mark), args).fetchall())

    def position(self, source: str) -> int | None:
        rows = self._rows("SELECT position FROM subscription WHERE source = ?", (source,))
        return int(rows[0][0]) if rows else None

    def subjects(self, collection: str, author: str) -> list[str]:
        rows = self._rows(
            "SELECT subject FROM item WHERE collection = ? AND did = ? AND subject IS NOT NULL"
            " ORDER BY rank DESC LIMIT ?",
            (collection, author, MAX_AUTHORS),
        )
        return [row[0] for row in rows]

    def ranked_subjects(
        self, collection: str, authors: Sequence[str] | None, page: Page
    ) -> list[Ranked]:
        by, dids = "", []
        if authors is not None:
            dids = list(authors)[:MAX_AUTHORS]
            if not dids:
                return []
            by = f"AND did IN ({','.join('?' * len(dids))})"
        below, args = _below(page.before, "top", "subject")
        sql = (
            f"SELECT top, subject FROM (SELECT subject, MAX(rank) AS top FROM item"
            f" WHERE collection = ? {by} AND subject IS NOT NULL AND {VISIBLE}"
            f" GROUP BY subject) AS liked WHERE {VISIBLE_SUBJECT} {below}"
            " ORDER BY top DESC, subject DESC LIMIT ?"
        )
        rows = self._rows(sql, (collection, *dids, *args, page.limit))
        return [Ranked(rank, uri) for rank, uri in rows]

    def ranked(self, page: Page) -> list[Ranked]:
        below, args = _below(page.before, "rank", "uri")
        rows = self._rows(
            f"SELECT rank, uri FROM item WHERE in_feed = 1 AND {VISIBLE} {below}"
            " ORDER BY rank DESC, uri DESC LIMIT ?",
            (*args, page.limit),
        )
        return [Ranked(rank, uri) for rank, uri in rows]


def _below(before: Ranked | None, rank: str, uri: str) -> tuple[str, tuple[float | str, ...]]:
    """The condition (`AND ...`) for entries strictly after `before` in (rank, uri) descending
    order."""
    if before is None:
        return "", ()
    return f"AND ({rank}, {uri}) < (?, ?)", (before.rank, before.uri)

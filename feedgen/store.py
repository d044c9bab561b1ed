"""The feed generator's store: every SQL statement of the SDK, on SQLite (`<data>/feedgen.sqlite`)
or on PostgreSQL (FEEDGEN_DATABASE_URL, schema `feedgen`) through runtime.sqlite and
runtime.postgres: the statements are written once, with `?` placeholders.

Three tables: `item` holds the records a feed selected (`in_feed` 1, with their rank) or kept
for its personalised function (`in_feed` 0, ranked by arrival), with the record's subject when
it has one; `hidden` the accounts not active (taken down, suspended, deactivated), whose
records skeletons leave out until they are active again; `subscription` holds the
subscription's position, written in the same transaction as the items it covers, so a restart
resumes exactly where the last commit left off (one writer thread; on SQLite, reads run inline,
see FeedStore.read).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar

from feedgen.sdk import Page, Ranked
from runtime import sqlite
from runtime.sql import Connection, transaction

if TYPE_CHECKING:  # psycopg is imported only for a PostgreSQL store
    from runtime.postgres import PostgresDatabase

T = TypeVar("T")

PG_SCHEMA: Final = "feedgen"
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


def prepare(conn: Connection) -> None:
    """The tables, on the writer's connection as it opens."""
    for statement in SCHEMA.split(";"):
        if statement.strip():
            conn.execute(statement)


class FeedStore:
    """The feed's database (runtime.sqlite or runtime.postgres) and the subscription `source`
    whose position it keeps."""

    def __init__(self, db: sqlite.SqliteDatabase | PostgresDatabase, source: str) -> None:
        self.db = db
        self.source = source
        self._inline: sqlite3.Connection | None = None

    @classmethod
    def sqlite(cls, path: Path, source: str) -> FeedStore:
        return cls(sqlite.SqliteDatabase(path, prepare, "feedgen"), source)

    @classmethod
    def postgres(cls, url: str, source: str) -> FeedStore:
        from runtime.postgres import PostgresDatabase

        return cls(PostgresDatabase(url, PG_SCHEMA, prepare, "feedgen"), source)

    async def open(self) -> None:
        await self.db.open()
        if isinstance(self.db, sqlite.SqliteDatabase):
            self._inline = sqlite.connect(self.db.path)

    async def close(self) -> None:
        await self.db.close()
        if self._inline is not None:
            self._inline.close()
            self._inline = None

    async def position(self) -> int | None:
        """Where the subscription stopped, or None before its first batch."""
        return await self.read(lambda reader: reader.position(self.source))

    async def write(self, batch: Batch) -> None:
        """Apply `batch` and move the cursor, in one transaction."""
        await self.db.write(write_batch, batch, self.source)

    async def read(self, fn: Callable[[SqlReader], T]) -> T:
        """Run `fn(reader)` in one snapshot: on SQLite on the calling (event loop) thread, on
        PostgreSQL on a reader thread (a round trip to the server would stall the loop).

        A SQLite skeleton page is an index range scan of well under a millisecond, and WAL
        readers never wait for the writer; handing it to a thread instead costs more than the
        query (the GIL's 5 ms switch interval: bench/feedgen.py measured p50 6 ms that way).
        """
        result: T
        if self._inline is not None:
            result = transaction(self._inline, _reading, (fn,))
        else:
            result = await self.db.read(_reading, fn)
        return result


def _reading(conn: Connection, fn: Callable[[SqlReader], T]) -> T:
    return fn(SqlReader(conn))


def write_batch(conn: Connection, batch: Batch, source: str) -> None:
    """The statements of one batch, inside the caller's transaction."""
    rows = [(i.uri, i.did, i.collection, i.subject, i.rank, int(i.in_feed)) for i in batch.puts]
    conn.executemany(UPSERT_ITEM, rows)
    conn.executemany("DELETE FROM item WHERE uri = ?", [(uri,) for uri in batch.deletes])
    conn.executemany("DELETE FROM item WHERE did = ?", [(did,) for did in batch.accounts_gone])
    for did, active in batch.statuses:
        if active:
            conn.execute("DELETE FROM hidden WHERE did = ?", (did,))
        else:
            conn.execute("INSERT INTO hidden VALUES (?) ON CONFLICT (did) DO NOTHING", (did,))
    if batch.position is not None:
        conn.execute(UPSERT_POSITION, (source, batch.position))


class SqlReader:
    """feedgen.sdk.Reader over one connection, in the caller's transaction."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def _rows(self, sql: str, args: Sequence[Any]) -> list[Any]:
        return self._conn.execute(sql, args).fetchall()

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

"""Every SQL statement of the actor store, over one connection (STYLE.md #5)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from atcore.cid import CID
from atcore.errors import MissingBlock


@dataclass(frozen=True)
class RootRow:
    """The repo's current signed commit, its rev and MST root."""

    cid: CID
    rev: str
    data: CID


@dataclass(frozen=True)
class RecordRow:
    collection: str
    rkey: str
    cid: CID
    value: bytes


class ActorSql:
    """Queries over one actor database connection; also a read-through BlockStore.

    Used by the read connection for queries and, inside a write transaction, by the writer:
    `put` stages nothing itself, so MST edits go through an OverlayBlockStore over this and the
    new blocks are written with `put_blocks` in the commit's transaction.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    # -- BlockStore --
    def get(self, cid: CID) -> bytes:
        row = self.conn.execute("SELECT bytes FROM block WHERE cid = ?", (bytes(cid),)).fetchone()
        if row is None:
            raise MissingBlock(cid)
        data: bytes = row[0]
        return data

    def has(self, cid: CID) -> bool:
        row = self.conn.execute("SELECT 1 FROM block WHERE cid = ?", (bytes(cid),)).fetchone()
        return row is not None

    def put(self, cid: CID, data: bytes) -> None:
        raise TypeError("actor blocks are written with put_blocks inside a commit transaction")

    # -- reads --
    def root(self) -> RootRow | None:
        row = self.conn.execute("SELECT cid, rev, data FROM repo_root").fetchone()
        return None if row is None else RootRow(CID(row[0]), row[1], CID(row[2]))

    def record_cid(self, collection: str, rkey: str) -> CID | None:
        row = self.conn.execute(
            "SELECT cid FROM record WHERE collection = ? AND rkey = ?", (collection, rkey)
        ).fetchone()
        return None if row is None else CID(row[0])

    def get_record(self, collection: str, rkey: str) -> RecordRow | None:
        row = self.conn.execute(
            "SELECT r.cid, b.bytes FROM record r JOIN block b ON b.cid = r.cid"
            " WHERE r.collection = ? AND r.rkey = ?",
            (collection, rkey),
        ).fetchone()
        return None if row is None else RecordRow(collection, rkey, CID(row[0]), row[1])

    def list_records(
        self, collection: str, limit: int, cursor: str | None, reverse: bool
    ) -> list[RecordRow]:
        """Records of one collection by rkey: descending (newest TIDs first) unless `reverse`."""
        op, order = (">", "ASC") if reverse else ("<", "DESC")
        sql = (
            "SELECT r.rkey, r.cid, b.bytes FROM record r JOIN block b ON b.cid = r.cid"
            " WHERE r.collection = ?"
        )
        args: list[object] = [collection]
        if cursor is not None:
            sql += f" AND r.rkey {op} ?"
            args.append(cursor)
        sql += f" ORDER BY r.rkey {order} LIMIT ?"
        args.append(limit)
        rows = self.conn.execute(sql, args).fetchall()
        return [RecordRow(collection, rkey, CID(cid), value) for rkey, cid, value in rows]

    def collections(self) -> list[str]:
        rows = self.conn.execute("SELECT DISTINCT collection FROM record ORDER BY collection")
        return [row[0] for row in rows]

    def blocks_since(self, rev: str) -> Iterator[tuple[CID, bytes]]:
        """Blocks written by commits after `rev`, oldest first."""
        rows = self.conn.execute(
            "SELECT cid, bytes FROM block WHERE rev > ? ORDER BY rev, cid", (rev,)
        )
        for cid, data in rows:
            yield CID(cid), data

    def outbox(self) -> list[tuple[int, str, str, bytes]]:
        """Events not yet known to be in the global log: (id, kind, rev, frame), in order."""
        rows = self.conn.execute("SELECT id, kind, rev, frame FROM outbox ORDER BY id")
        return [(row[0], row[1], row[2], row[3]) for row in rows]

    # -- writes (inside the caller's transaction) --
    def put_blocks(self, blocks: Iterable[tuple[CID, bytes]], rev: str) -> None:
        self.conn.executemany(
            "INSERT OR IGNORE INTO block (cid, bytes, rev) VALUES (?, ?, ?)",
            ((bytes(cid), data, rev) for cid, data in blocks),
        )

    def put_record(self, collection: str, rkey: str, cid: CID, rev: str, now: str) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO record (collection, rkey, cid, rev, indexed_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (collection, rkey, bytes(cid), rev, now),
        )

    def delete_record(self, collection: str, rkey: str) -> None:
        self.conn.execute(
            "DELETE FROM record WHERE collection = ? AND rkey = ?", (collection, rkey)
        )

    def drop_blocks(self, cids: Iterable[CID]) -> None:
        """Delete blocks no longer in the repo (the caller knows they left the tree)."""
        self.conn.executemany("DELETE FROM block WHERE cid = ?", ((bytes(c),) for c in cids))

    def drop_unreferenced_records(self, cids: Iterable[CID]) -> None:
        """Delete record blocks that no record row points at any more."""
        self.conn.executemany(
            "DELETE FROM block WHERE cid = ? AND NOT EXISTS (SELECT 1 FROM record WHERE cid = ?)",
            ((bytes(c), bytes(c)) for c in cids),
        )

    def set_root(self, did: str, cid: CID, rev: str, data: CID) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO repo_root (did, cid, rev, data) VALUES (?, ?, ?, ?)",
            (did, bytes(cid), rev, bytes(data)),
        )

    def add_outbox(self, kind: str, rev: str, frame: bytes) -> int:
        cur = self.conn.execute(
            "INSERT INTO outbox (kind, rev, frame) VALUES (?, ?, ?)", (kind, rev, frame)
        )
        assert cur.lastrowid is not None
        return cur.lastrowid

    def clear_outbox(self, upto: int) -> None:
        self.conn.execute("DELETE FROM outbox WHERE id <= ?", (upto,))

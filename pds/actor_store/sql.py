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

    # -- blobs: a row per stored blob; `temp_key` is set until a record first references it --
    def put_blob(self, cid: CID, mime: str, size: int, now: str) -> None:
        # A repeated upload of a still-unreferenced blob restarts its grace period; a blob an
        # imported record already references (migration) is taken up at once.
        self.conn.execute(
            "INSERT INTO blob (cid, mime, size, temp_key, created_at)"
            " VALUES (?1, ?2, ?3, CASE WHEN EXISTS"
            " (SELECT 1 FROM record_blob WHERE blob_cid = ?1) THEN NULL ELSE 'upload' END, ?4)"
            " ON CONFLICT (cid) DO UPDATE"
            " SET created_at = excluded.created_at WHERE temp_key IS NOT NULL",
            (bytes(cid), mime, size, now),
        )

    def blob(self, cid: CID) -> tuple[str, int] | None:
        """(mime, size) of a stored blob."""
        row = self.conn.execute(
            "SELECT mime, size FROM blob WHERE cid = ?", (bytes(cid),)
        ).fetchone()
        return None if row is None else (row[0], row[1])

    def link_blobs(self, path: str, cids: Iterable[CID]) -> None:
        for cid in cids:
            self.conn.execute(
                "INSERT OR IGNORE INTO record_blob (blob_cid, record_path) VALUES (?, ?)",
                (bytes(cid), path),
            )
            self.conn.execute("UPDATE blob SET temp_key = NULL WHERE cid = ?", (bytes(cid),))

    def unlink_blobs(self, path: str) -> list[CID]:
        """Forget which blobs the record at `path` referenced; returns them."""
        rows = self.conn.execute(
            "DELETE FROM record_blob WHERE record_path = ? RETURNING blob_cid", (path,)
        ).fetchall()
        return [CID(row[0]) for row in rows]

    def drop_orphan_blobs(self, cids: Iterable[CID]) -> list[CID]:
        """Delete the rows of once-referenced blobs no record references now; returns them."""
        dropped = []
        for cid in dict.fromkeys(cids):
            cur = self.conn.execute(
                "DELETE FROM blob WHERE cid = ? AND temp_key IS NULL"
                " AND NOT EXISTS (SELECT 1 FROM record_blob WHERE blob_cid = ?)",
                (bytes(cid), bytes(cid)),
            )
            if cur.rowcount:
                dropped.append(cid)
        return dropped

    def drop_stale_uploads(self, before: str) -> list[CID]:
        """Delete uploads that no record took up before `before`; returns them."""
        rows = self.conn.execute(
            "DELETE FROM blob WHERE temp_key IS NOT NULL AND created_at < ?"
            " AND NOT EXISTS (SELECT 1 FROM record_blob WHERE blob_cid = blob.cid) RETURNING cid",
            (before,),
        ).fetchall()
        return [CID(row[0]) for row in rows]

    def stats(self) -> tuple[int, int, int, int]:
        """(blocks, records, blobs records reference, of those the ones stored here)."""
        row = self.conn.execute(
            "SELECT (SELECT COUNT(*) FROM block), (SELECT COUNT(*) FROM record),"
            " (SELECT COUNT(DISTINCT blob_cid) FROM record_blob),"
            " (SELECT COUNT(DISTINCT rb.blob_cid) FROM record_blob rb"
            "  JOIN blob b ON b.cid = rb.blob_cid)"
        ).fetchone()
        return row[0], row[1], row[2], row[3]

    def has_pending_uploads(self) -> bool:
        """Whether any upload still waits for a record to take it up."""
        row = self.conn.execute(
            "SELECT 1 FROM blob WHERE temp_key IS NOT NULL"
            " AND NOT EXISTS (SELECT 1 FROM record_blob WHERE blob_cid = blob.cid) LIMIT 1"
        ).fetchone()
        return row is not None

    def list_blobs(self, since: str | None, cursor: CID | None, limit: int) -> list[CID]:
        """Referenced blobs in CID order; with `since`, those of records written after it."""
        sql = "SELECT DISTINCT rb.blob_cid FROM record_blob rb JOIN blob b ON b.cid = rb.blob_cid"
        args: list[object] = []
        where = []
        if since is not None:
            sql += " JOIN record r ON rb.record_path = r.collection || '/' || r.rkey"
            where.append("r.rev > ?")
            args.append(since)
        if cursor is not None:
            where.append("rb.blob_cid > ?")
            args.append(bytes(cursor))
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY rb.blob_cid LIMIT ?"
        args.append(limit)
        return [CID(row[0]) for row in self.conn.execute(sql, args)]

    def missing_blobs(self, cursor: CID | None, limit: int) -> list[tuple[CID, str]]:
        """(blob cid, record path) for references to blobs not stored here (after migration)."""
        rows = self.conn.execute(
            "SELECT blob_cid, min(record_path) FROM record_blob"
            " WHERE blob_cid > ? AND blob_cid NOT IN (SELECT cid FROM blob)"
            " GROUP BY blob_cid ORDER BY blob_cid LIMIT ?",
            (bytes(cursor) if cursor is not None else b"", limit),
        ).fetchall()
        return [(CID(row[0]), row[1]) for row in rows]

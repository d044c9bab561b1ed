"""Takedowns of single records and blobs (lexicon com.atproto.admin.updateSubjectStatus).

Account takedowns are the `takedown_ref` column of the account row; a record or blob taken down
stays in the signed repo (removing it would need a commit by the owner) but is no longer served.

Every record read checks for a takedown, and almost no account has one: the store keeps the
(kind, did) pairs that have any row in memory, so the check for the others costs no database
call. The set only ever errs on the side of a database look-up: a pair is marked before its
first row is written and unmarked, after a removal commits, only when no row is left.
"""

from __future__ import annotations

import sqlite3
from typing import Final, Literal

from runtime.sqlite import SqliteDatabase

SUBJECT_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS subject_takedown (
    kind TEXT NOT NULL,
    did TEXT NOT NULL,
    subject TEXT NOT NULL,
    ref TEXT NOT NULL,
    PRIMARY KEY (kind, did, subject)
);
"""
SubjectKind = Literal["record", "blob"]


class SubjectStore:
    """Rows of `subject_takedown`: (kind, did, subject) -> the moderation reference."""

    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db
        self._marked: set[tuple[str, str]] = set()

    async def load(self) -> None:
        """Mark the (kind, did) pairs that have takedowns (once, when the store opens)."""
        rows = await self._db.read(
            lambda conn: conn.execute("SELECT DISTINCT kind, did FROM subject_takedown").fetchall()
        )
        self._marked = {(str(kind), str(did)) for kind, did in rows}

    def _unmark_if_none(self, conn: sqlite3.Connection, kind: str, did: str) -> None:
        # Runs on the database thread, after the removal commits and before any later change.
        left = conn.execute(
            "SELECT 1 FROM subject_takedown WHERE kind = ? AND did = ? LIMIT 1", (kind, did)
        ).fetchone()
        if left is None:
            self._marked.discard((kind, did))

    async def set_takedown(
        self, kind: SubjectKind, did: str, subject: str, ref: str | None
    ) -> None:
        """Take the subject down under `ref`, or restore it when `ref` is None."""
        if ref is None:
            await self._db.write(
                lambda conn: conn.execute(
                    "DELETE FROM subject_takedown WHERE kind = ? AND did = ? AND subject = ?",
                    (kind, did, subject),
                )
            )
            await self._db.read(lambda conn: self._unmark_if_none(conn, kind, did))
            return
        self._marked.add((kind, did))
        await self._db.write(
            lambda conn: conn.execute(
                "INSERT OR REPLACE INTO subject_takedown VALUES (?, ?, ?, ?)",
                (kind, did, subject, ref),
            )
        )

    async def takedown_ref(self, kind: SubjectKind, did: str, subject: str) -> str | None:
        if (kind, did) not in self._marked:
            return None
        row = await self._db.read(
            lambda conn: conn.execute(
                "SELECT ref FROM subject_takedown WHERE kind = ? AND did = ? AND subject = ?",
                (kind, did, subject),
            ).fetchone()
        )
        return None if row is None else str(row[0])

    async def taken_down(self, kind: SubjectKind, did: str, subjects: list[str]) -> set[str]:
        """Which of `subjects` (at most a page of them) are taken down."""
        if not subjects or (kind, did) not in self._marked:
            return set()
        marks = ",".join("?" * len(subjects))
        rows = await self._db.read(
            lambda conn: conn.execute(
                "SELECT subject FROM subject_takedown WHERE kind = ? AND did = ?"
                f" AND subject IN ({marks})",
                (kind, did, *subjects),
            ).fetchall()
        )
        return {str(row[0]) for row in rows}

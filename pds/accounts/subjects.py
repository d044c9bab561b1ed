"""Takedowns of single records and blobs (lexicon com.atproto.admin.updateSubjectStatus).

Account takedowns are the `takedown_ref` column of the account row; a record or blob taken down
stays in the signed repo (removing it would need a commit by the owner) but is no longer served.
"""

from __future__ import annotations

from typing import Final, Literal

from pds.accounts.db import Database

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

    def __init__(self, db: Database) -> None:
        self._db = db

    async def set_takedown(
        self, kind: SubjectKind, did: str, subject: str, ref: str | None
    ) -> None:
        """Take the subject down under `ref`, or restore it when `ref` is None."""
        if ref is None:
            await self._db.transact(
                lambda conn: conn.execute(
                    "DELETE FROM subject_takedown WHERE kind = ? AND did = ? AND subject = ?",
                    (kind, did, subject),
                )
            )
            return
        await self._db.transact(
            lambda conn: conn.execute(
                "INSERT OR REPLACE INTO subject_takedown VALUES (?, ?, ?, ?)",
                (kind, did, subject, ref),
            )
        )

    async def takedown_ref(self, kind: SubjectKind, did: str, subject: str) -> str | None:
        row = await self._db.read(
            lambda conn: conn.execute(
                "SELECT ref FROM subject_takedown WHERE kind = ? AND did = ? AND subject = ?",
                (kind, did, subject),
            ).fetchone()
        )
        return None if row is None else str(row[0])

    async def taken_down(self, kind: SubjectKind, did: str, subjects: list[str]) -> set[str]:
        """Which of `subjects` (at most a page of them) are taken down."""
        if not subjects:
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

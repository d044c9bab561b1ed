"""Refresh-token rotation and one-time email tokens: their SQL lives here (spec-xrpc.md auth).

A refresh token may be exchanged once: rotating it records its successor in `next_id`, and a
second exchange of the same token is refused, as is an expired or revoked one.
"""

from __future__ import annotations

import hmac
import sqlite3
import time
from typing import Final

from runtime.sqlite import SqliteDatabase

TOKEN_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS refresh_token (
    id TEXT PRIMARY KEY,
    did TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    next_id TEXT,
    app_password_name TEXT
);
CREATE INDEX IF NOT EXISTS refresh_token_by_did ON refresh_token (did);
CREATE TABLE IF NOT EXISTS email_token (
    purpose TEXT NOT NULL,
    did TEXT NOT NULL,
    token TEXT NOT NULL,
    requested_at INTEGER NOT NULL,
    PRIMARY KEY (purpose, did)
);
CREATE INDEX IF NOT EXISTS email_token_by_token ON email_token (purpose, token);
"""
# Columns added since the first release, for databases made before them.
TOKEN_COLUMNS: Final = (("refresh_token", "app_password_name", "TEXT"),)


class RefreshRefused(Exception):
    """The refresh token is unknown, revoked, expired or already used."""


class TokenStore:
    """Rows of `refresh_token` and `email_token` in the account database."""

    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def add_refresh(
        self, token_id: str, did: str, expires_at: int, app_password: str | None = None
    ) -> None:
        """Record a refresh token; `app_password` names the app password it was opened with."""
        await self._db.write(
            lambda conn: conn.execute(
                "INSERT INTO refresh_token (id, did, expires_at, app_password_name)"
                " VALUES (?, ?, ?, ?)",
                (token_id, did, expires_at, app_password),
            )
        )

    async def rotate_refresh(
        self, token_id: str, did: str, next_id: str, next_expires_at: int
    ) -> str | None:
        """Retire `token_id` in favour of `next_id`, atomically; RefreshRefused if unusable.

        Returns the app password the session was opened with (None for the account password);
        the successor keeps it, so the session's scope survives refreshes.
        """
        now = int(time.time())

        def rotate(conn: sqlite3.Connection) -> str | None:
            row = conn.execute(
                "SELECT did, expires_at, next_id, app_password_name FROM refresh_token"
                " WHERE id = ?",
                (token_id,),
            ).fetchone()
            if row is None or row[0] != did:
                raise RefreshRefused("Token has been revoked")
            if row[2] is not None:
                raise RefreshRefused("Token has already been used")
            if row[1] <= now:
                raise RefreshRefused("Token has expired")
            conn.execute("UPDATE refresh_token SET next_id = ? WHERE id = ?", (next_id, token_id))
            conn.execute(
                "INSERT INTO refresh_token (id, did, expires_at, app_password_name)"
                " VALUES (?, ?, ?, ?)",
                (next_id, did, next_expires_at, row[3]),
            )
            # Rotated and expired rows only serve to recognise reuse; drop the stale ones.
            conn.execute("DELETE FROM refresh_token WHERE did = ? AND expires_at <= ?", (did, now))
            return str(row[3]) if row[3] is not None else None

        return await self._db.write(rotate)

    async def revoke_refresh(self, token_id: str) -> bool:
        cursor = await self._db.write(
            lambda conn: conn.execute("DELETE FROM refresh_token WHERE id = ?", (token_id,))
        )
        return bool(cursor.rowcount)

    async def put_email_token(self, purpose: str, did: str, token: str) -> None:
        """Store a fresh token for (purpose, did), replacing any earlier one."""
        await self._db.write(
            lambda conn: conn.execute(
                "INSERT OR REPLACE INTO email_token VALUES (?, ?, ?, ?)",
                (purpose, did, token, int(time.time())),
            )
        )

    async def find_email_token(self, purpose: str, token: str) -> str | None:
        """The DID a token of `purpose` was issued to (for resetPassword, which names no
        account); tokens are random enough that one matching two accounts cannot happen."""
        row = await self._db.read(
            lambda conn: conn.execute(
                "SELECT did FROM email_token WHERE purpose = ? AND token = ?",
                (purpose, token.upper()),
            ).fetchone()
        )
        return None if row is None else str(row[0])

    async def take_email_token(self, purpose: str, did: str, token: str, max_age: int) -> str:
        """Consume a matching token; '' when it matched, else why not ('invalid'/'expired')."""
        now = int(time.time())

        def take(conn: sqlite3.Connection) -> str:
            row = conn.execute(
                "SELECT token, requested_at FROM email_token WHERE purpose = ? AND did = ?",
                (purpose, did),
            ).fetchone()
            if row is None or not hmac.compare_digest(row[0].encode(), token.upper().encode()):
                return "invalid"
            if row[1] + max_age <= now:
                return "expired"
            conn.execute("DELETE FROM email_token WHERE purpose = ? AND did = ?", (purpose, did))
            return ""

        return await self._db.write(take)

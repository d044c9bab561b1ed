"""App passwords: named extra passwords with a narrower session scope (lexicon
com.atproto.server.createAppPassword; the reference PDS's `xxxx-xxxx-xxxx-xxxx` shape).

An app password is 80 random bits chosen by us, never by a person, so a fast keyed hash is as
safe to store as a slow password hash; it also lets a login find the password in one lookup
instead of running argon2 once per stored app password.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import sqlite3
from dataclasses import dataclass
from typing import Final

from runtime.sqlite import SqliteDatabase

APP_PASSWORD_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS app_password (
    did TEXT NOT NULL,
    name TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    privileged INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (did, name)
);
CREATE INDEX IF NOT EXISTS app_password_by_hash ON app_password (password_hash);
"""
# The base32 alphabet, lower-cased, as the reference generates them.
_ALPHABET: Final = "abcdefghijklmnopqrstuvwxyz234567"
APP_PASSWORD_RE: Final = re.compile(r"[a-z2-7]{4}(-[a-z2-7]{4}){3}")
MAX_NAME_LENGTH: Final = 100
# Enough for any person's apps; a bound so the table cannot grow without limit.
MAX_APP_PASSWORDS: Final = 100


class DuplicateAppPassword(Exception):
    """The account already has an app password of this name."""


class TooManyAppPasswords(Exception):
    """The account has MAX_APP_PASSWORDS already."""


@dataclass(frozen=True)
class AppPassword:
    name: str
    privileged: bool
    created_at: str


def generate_app_password() -> str:
    chars = "".join(secrets.choice(_ALPHABET) for _ in range(16))
    return "-".join(chars[i : i + 4] for i in range(0, 16, 4))


def _hash(did: str, password: str) -> str:
    return hashlib.sha256(f"{did}\n{password}".encode()).hexdigest()


class AppPasswordStore:
    """Rows of `app_password` in the account database."""

    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def create(self, did: str, name: str, privileged: bool, created_at: str) -> str:
        """A new app password named `name`; its plain text is returned once, never stored."""
        password = generate_app_password()

        def insert(conn: sqlite3.Connection) -> None:
            (count,) = conn.execute(
                "SELECT count(*) FROM app_password WHERE did = ?", (did,)
            ).fetchone()
            if count >= MAX_APP_PASSWORDS:
                raise TooManyAppPasswords(did)
            try:
                conn.execute(
                    "INSERT INTO app_password VALUES (?, ?, ?, ?, ?)",
                    (did, name, _hash(did, password), int(privileged), created_at),
                )
            except sqlite3.IntegrityError:
                raise DuplicateAppPassword(name) from None

        await self._db.write(insert)
        return password

    async def list(self, did: str) -> list[AppPassword]:
        rows = await self._db.read(
            lambda conn: conn.execute(
                "SELECT name, privileged, created_at FROM app_password WHERE did = ?"
                " ORDER BY created_at DESC, name",
                (did,),
            ).fetchall()
        )
        return [AppPassword(name, bool(privileged), at) for name, privileged, at in rows]

    async def get(self, did: str, name: str) -> AppPassword | None:
        row = await self._db.read(
            lambda conn: conn.execute(
                "SELECT name, privileged, created_at FROM app_password WHERE did = ? AND name = ?",
                (did, name),
            ).fetchone()
        )
        return None if row is None else AppPassword(row[0], bool(row[1]), row[2])

    async def verify(self, did: str, password: str) -> AppPassword | None:
        """The app password `password` is, if it is one of the account's."""
        if APP_PASSWORD_RE.fullmatch(password) is None:
            return None
        row = await self._db.read(
            lambda conn: conn.execute(
                "SELECT name, privileged, created_at FROM app_password"
                " WHERE password_hash = ? AND did = ?",
                (_hash(did, password), did),
            ).fetchone()
        )
        return None if row is None else AppPassword(row[0], bool(row[1]), row[2])

    async def revoke(self, did: str, name: str) -> None:
        """Delete the app password and every session opened with it."""

        def delete(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM app_password WHERE did = ? AND name = ?", (did, name))
            conn.execute(
                "DELETE FROM refresh_token WHERE did = ? AND app_password_name = ?", (did, name)
            )

        await self._db.write(delete)

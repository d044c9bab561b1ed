"""Account rows and invite codes: all SQL about accounts lives here (spec-account.md)."""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Final, TypeVar

from atcore.syntax.datetime import now_iso
from pds.accounts.account import Account
from pds.accounts.app_passwords import APP_PASSWORD_SCHEMA, AppPasswordStore
from pds.accounts.cache import AccountCache
from pds.accounts.invites import INVITE_SCHEMA, InviteStore
from pds.accounts.preferences import PREFERENCE_SCHEMA, PreferenceStore
from pds.accounts.subjects import SUBJECT_SCHEMA, SubjectStore
from pds.accounts.tokens import TOKEN_COLUMNS, TOKEN_SCHEMA, TokenStore
from runtime.sqlite import SqliteDatabase, add_columns

_SCHEMA: Final = (
    """
CREATE TABLE IF NOT EXISTS account (
    did TEXT PRIMARY KEY,
    handle TEXT NOT NULL UNIQUE,
    email TEXT UNIQUE,
    password_hash TEXT,
    created_at TEXT NOT NULL,
    email_confirmed_at TEXT,
    deactivated_at TEXT,
    takedown_ref TEXT
);
CREATE TABLE IF NOT EXISTS invite_code (
    code TEXT PRIMARY KEY,
    available INTEGER NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0,
    for_account TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS invite_code_use (
    code TEXT NOT NULL REFERENCES invite_code (code),
    used_by TEXT NOT NULL,
    used_at TEXT NOT NULL,
    PRIMARY KEY (code, used_by)
);
"""
    + TOKEN_SCHEMA
    + APP_PASSWORD_SCHEMA
    + INVITE_SCHEMA
    + SUBJECT_SCHEMA
    + PREFERENCE_SCHEMA
)
# Every table holding rows about one account, emptied when the account is deleted.
_PER_ACCOUNT: Final = (
    ("refresh_token", "did"),
    ("email_token", "did"),
    ("invite_code_use", "used_by"),
    ("app_password", "did"),
    ("account_invites", "did"),
    ("subject_takedown", "did"),
    ("account_pref", "did"),
)
# Accounts listed per page by searchAccounts and the admin CLI, at most.
MAX_PAGE: Final = 1000
T = TypeVar("T")
_COLUMNS: Final = (
    "did, handle, email, password_hash, created_at, email_confirmed_at, deactivated_at,"
    " takedown_ref"
)


class HandleTaken(Exception):
    """Another account already has this handle."""


class AccountExists(Exception):
    """This DID already has an account here."""


class EmailTaken(Exception):
    """Another account already uses this email address."""


class InviteCodeUnusable(Exception):
    """The invite code does not exist, is disabled or is used up."""


def _fetch(conn: sqlite3.Connection, where: str, value: str) -> Account | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM account WHERE {where} = ?", (value,)).fetchone()
    return None if row is None else Account(*row)


def _use_invite(conn: sqlite3.Connection, code: str, did: str, at: str) -> None:
    row = conn.execute(
        "SELECT available, disabled, (SELECT count(*) FROM invite_code_use u WHERE u.code = c.code)"
        " FROM invite_code c WHERE code = ?",
        (code,),
    ).fetchone()
    if row is None or row[1] or row[2] >= row[0]:
        raise InviteCodeUnusable(code)
    conn.execute("INSERT INTO invite_code_use VALUES (?, ?, ?)", (code, did, at))


def _prepare(conn: sqlite3.Connection) -> None:
    conn.executescript(_SCHEMA)
    add_columns(conn, TOKEN_COLUMNS)


class AccountStore:
    """Accounts and invite codes in account.sqlite, with the stores of the other per-account
    tables: refresh and email `tokens`, `app_passwords`, `invites`, takedowns of single
    records and blobs (`subjects`) and `preferences`.

    Account rows read by DID or handle are cached in memory; every change to a row goes through
    `_change`, which drops it from the cache before and after the transaction.
    """

    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db
        self._cache = AccountCache()
        self.tokens = TokenStore(db)
        self.app_passwords = AppPasswordStore(db)
        self.invites = InviteStore(db)
        self.subjects = SubjectStore(db)
        self.preferences = PreferenceStore(db)

    @classmethod
    async def open(cls, path: Path) -> AccountStore:
        db = SqliteDatabase(path, _prepare, "accounts")
        await db.open()
        store = cls(db)
        await store.subjects.load()
        return store

    async def close(self) -> None:
        await self._db.close()

    async def create(
        self,
        did: str,
        handle: str,
        email: str | None,
        password_hash: str | None,
        *,
        deactivated: bool = False,
        invite_code: str | None = None,
    ) -> Account:
        """Insert an account (using up `invite_code` if given) in one transaction."""
        at = now_iso()
        off = at if deactivated else None
        account = Account(did, handle, email, password_hash, at, None, off, None)

        def insert(conn: sqlite3.Connection) -> Account:
            if _fetch(conn, "handle", handle) is not None:
                raise HandleTaken(handle)
            if email is not None and _fetch(conn, "email", email) is not None:
                raise EmailTaken(email)
            if invite_code is not None:
                _use_invite(conn, invite_code, did, at)
            conn.execute(
                f"INSERT INTO account ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (did, handle, email, password_hash, at, None, account.deactivated_at, None),
            )
            return account

        try:
            return await self._change(did, insert)
        except sqlite3.IntegrityError as exc:  # the did primary key: a DID registered twice
            raise AccountExists(did) from exc

    async def delete(self, did: str) -> None:
        """Remove an account row and every row about it (deletion, or a failed creation)."""

        def delete(conn: sqlite3.Connection) -> None:
            for table, column in _PER_ACCOUNT:
                conn.execute(f"DELETE FROM {table} WHERE {column} = ?", (did,))
            conn.execute("DELETE FROM account WHERE did = ?", (did,))

        await self._change(did, delete)

    async def _change(self, did: str, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run a transaction changing the account row of `did`, keeping the cache honest: a
        read that started before the change can no longer fill it, and none is served stale."""
        self._cache.forget(did)
        try:
            return await self._db.write(fn)
        finally:
            self._cache.forget(did)

    async def _cached_read(self, where: str, value: str) -> Account | None:
        generation = self._cache.generation
        account = await self._db.read(lambda conn: _fetch(conn, where, value))
        self._cache.fill(account, generation)
        return account

    async def by_did(self, did: str) -> Account | None:
        cached = self._cache.by_did(did)
        return cached if cached is not None else await self._cached_read("did", did)

    async def by_handle(self, handle: str) -> Account | None:
        handle = handle.lower()
        cached = self._cache.by_handle(handle)
        return cached if cached is not None else await self._cached_read("handle", handle)

    async def by_email(self, email: str) -> Account | None:
        return await self._db.read(lambda conn: _fetch(conn, "email", email.lower()))

    async def find(self, identifier: str) -> Account | None:
        """The account named by a DID, a handle or an email address."""
        if identifier.startswith("did:"):
            return await self.by_did(identifier)
        if "@" in identifier:
            return await self.by_email(identifier)
        return await self.by_handle(identifier)

    async def set_handle(self, did: str, handle: str) -> None:
        def update(conn: sqlite3.Connection) -> None:
            other = _fetch(conn, "handle", handle)
            if other is not None and other.did != did:
                raise HandleTaken(handle)
            conn.execute("UPDATE account SET handle = ? WHERE did = ?", (handle, did))

        await self._change(did, update)

    async def set_deactivated(self, did: str, deactivated: bool) -> None:
        at = now_iso() if deactivated else None
        await self._change(
            did,
            lambda conn: conn.execute(
                "UPDATE account SET deactivated_at = ? WHERE did = ?", (at, did)
            ),
        )

    async def set_takedown(self, did: str, ref: str | None) -> None:
        """Take the account down under `ref` (None restores it); its sessions end at once."""

        def update(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE account SET takedown_ref = ? WHERE did = ?", (ref, did))
            if ref is not None:
                conn.execute("DELETE FROM refresh_token WHERE did = ?", (did,))

        await self._change(did, update)

    async def set_email(self, did: str, email: str) -> None:
        """A new address, unconfirmed until its owner proves it."""

        def update(conn: sqlite3.Connection) -> None:
            other = _fetch(conn, "email", email)
            if other is not None and other.did != did:
                raise EmailTaken(email)
            conn.execute(
                "UPDATE account SET email = ?, email_confirmed_at = NULL WHERE did = ?",
                (email, did),
            )

        await self._change(did, update)

    async def confirm_email(self, did: str) -> None:
        await self._change(
            did,
            lambda conn: conn.execute(
                "UPDATE account SET email_confirmed_at = ? WHERE did = ?", (now_iso(), did)
            ),
        )

    async def set_password(self, did: str, password_hash: str) -> None:
        """A new password; every open session (refresh token) of the account ends."""

        def update(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE account SET password_hash = ? WHERE did = ?", (password_hash, did))
            conn.execute("DELETE FROM refresh_token WHERE did = ?", (did,))

        await self._change(did, update)

    async def search(self, email: str | None, limit: int, cursor: str | None) -> list[Account]:
        """Accounts by DID order after `cursor`, those whose email contains `email` if given."""
        where, args = "did > ?", [cursor or ""]
        if email:
            where += " AND instr(email, ?) > 0"
            args.append(email.lower())
        args.append(str(min(limit, MAX_PAGE)))
        rows = await self._db.read(
            lambda conn: conn.execute(
                f"SELECT {_COLUMNS} FROM account WHERE {where} ORDER BY did LIMIT ?", args
            ).fetchall()
        )
        return [Account(*row) for row in rows]

    async def create_invite_codes(
        self,
        count: int,
        use_count: int,
        for_account: str,
        created_by: str,
        *,
        disabled: bool = False,
    ) -> list[str]:
        codes = [f"{_code_prefix(for_account)}-{secrets.token_hex(5)}" for _ in range(count)]
        at = now_iso()
        await self._db.write(
            lambda conn: conn.executemany(
                "INSERT INTO invite_code"
                " (code, available, disabled, for_account, created_by, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [(code, use_count, int(disabled), for_account, created_by, at) for code in codes],
            )
        )
        return codes


def _code_prefix(for_account: str) -> str:
    """A readable prefix, as the reference's `host-name-xxxxx` codes have."""
    return "".join(c if c.isalnum() else "-" for c in for_account.removeprefix("did:"))[:32]

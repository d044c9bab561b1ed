"""Invite codes: views, listing, disabling and codes earned over time (lexicons
com.atproto.server.defs#inviteCode, getAccountInviteCodes, com.atproto.admin.*Invite*).

The `invite_code` tables live in store.py, which uses a code when an account is created; this
module reads and manages them. An account earns one code per PDS_INVITE_INTERVAL of its life
since PDS_INVITE_EPOCH, holding at most MAX_OPEN_EARNED unused ones, as the reference PDS does.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from atcore.syntax.integer import parse_integer
from runtime.sqlite import SqliteDatabase

INVITE_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS account_invites (
    did TEXT PRIMARY KEY,
    disabled INTEGER NOT NULL,
    note TEXT
);
"""
MAX_OPEN_EARNED: Final = 5
# Codes come from the reference's "admin" creator unless an account earned them itself.
ADMIN_CREATOR: Final = "admin"


@dataclass(frozen=True)
class InvitePolicy:
    interval_ms: int
    epoch_ms: int


def _ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def _views(conn: sqlite3.Connection, where: str, args: tuple[Any, ...]) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT code, available, disabled, for_account, created_by, created_at FROM invite_code"
        f" WHERE {where}",
        args,
    ).fetchall()
    views = []
    for code, available, disabled, for_account, created_by, created_at in rows:
        uses = conn.execute(
            "SELECT used_by, used_at FROM invite_code_use WHERE code = ? ORDER BY used_at",
            (code,),
        ).fetchall()
        views.append(
            {
                "code": code,
                "available": available,
                "disabled": bool(disabled),
                "forAccount": for_account,
                "createdBy": created_by,
                "createdAt": created_at,
                "uses": [{"usedBy": by, "usedAt": at} for by, at in uses],
            }
        )
    return views


def earned_count(
    codes: list[dict[str, Any]], created_at: str, now_ms: int, policy: InvitePolicy
) -> int:
    """How many codes the account earned and has not been given yet."""
    routine = [c for c in codes if c["createdBy"] != ADMIN_CREATOR]
    unused = [c for c in routine if not c["disabled"] and c["available"] > len(c["uses"])]
    born = _ms(created_at)
    since = max(born, policy.epoch_ms)
    # Whole intervals lived since the epoch, counted on the account's own interval grid.
    could = (now_ms - born) // policy.interval_ms - (since - born) // policy.interval_ms
    in_epoch = [c for c in routine if _ms(c["createdAt"]) > policy.epoch_ms]
    return max(0, min(MAX_OPEN_EARNED - len(unused), could - len(in_epoch)))


class InviteStore:
    """Reads and changes of invite codes and per-account invite settings."""

    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def for_account(self, did: str) -> list[dict[str, Any]]:
        return await self._db.read(
            lambda conn: _views(conn, "for_account = ? ORDER BY created_at, code", (did,))
        )

    async def get(self, code: str) -> dict[str, Any] | None:
        views = await self._db.read(lambda conn: _views(conn, "code = ?", (code,)))
        return views[0] if views else None

    async def used_by(self, did: str) -> str | None:
        """The code `did` signed up with."""
        row = await self._db.read(
            lambda conn: conn.execute(
                "SELECT code FROM invite_code_use WHERE used_by = ?", (did,)
            ).fetchone()
        )
        return None if row is None else str(row[0])

    async def page(
        self, sort: str, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Every code, newest (or most used) first; the cursor is an offset for "usage"."""
        if sort == "usage":
            offset = parse_integer(cursor, 0) if cursor else 0
            where = (
                "1 ORDER BY (SELECT count(*) FROM invite_code_use u"
                " WHERE u.code = invite_code.code) DESC, code LIMIT ? OFFSET ?"
            )
            views = await self._db.read(lambda conn: _views(conn, where, (limit, offset)))
            return views, str(offset + limit) if len(views) == limit else None
        before = cursor or "\uffff"
        where = "created_at || code < ? ORDER BY created_at DESC, code DESC LIMIT ?"
        views = await self._db.read(lambda conn: _views(conn, where, (before, limit)))
        last = views[-1] if len(views) == limit else None
        return views, None if last is None else last["createdAt"] + last["code"]

    async def disable_codes(self, codes: list[str], accounts: list[str]) -> None:
        def disable(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "UPDATE invite_code SET disabled = 1 WHERE code = ?", [(c,) for c in codes]
            )
            conn.executemany(
                "UPDATE invite_code SET disabled = 1 WHERE for_account = ?",
                [(a,) for a in accounts],
            )

        await self._db.write(disable)

    async def set_account_disabled(self, did: str, disabled: bool, note: str | None) -> None:
        await self._db.write(
            lambda conn: conn.execute(
                "INSERT OR REPLACE INTO account_invites VALUES (?, ?, ?)",
                (did, int(disabled), note),
            )
        )

    async def account_settings(self, did: str) -> tuple[bool, str | None]:
        """(invites disabled, the admin's note) for an account."""
        row = await self._db.read(
            lambda conn: conn.execute(
                "SELECT disabled, note FROM account_invites WHERE did = ?", (did,)
            ).fetchone()
        )
        return (False, None) if row is None else (bool(row[0]), row[1])

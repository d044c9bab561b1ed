"""SQL for the social graph beyond follows (lexicons app/bsky/graph): the private mutes the
appview keeps per viewer (actors and lists), lists and their items, starter packs, and the
batched lookups hydration makes for them."""

from __future__ import annotations

import sqlite3
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from appview import records as r
from appview.db.reads import Page, _chunks, _marks, edges_by, edges_to, load_json
from appview.db.schema import JOINED_VIA
from appview.db.skeletons import _page, edges_from, parse_cursor
from runtime.sql import Connection


@dataclass(frozen=True, slots=True)
class NamedRow:
    """A list or a starter pack: its record and, for a list, how many items it holds."""

    uri: str
    cid: str
    did: str
    record: dict[str, Any]
    indexed_at: str
    items: int


@dataclass(frozen=True, slots=True)
class Mute:
    """A viewer's mute of one actor; `only_*` narrow it to reposts or quote posts."""

    only_reposts: bool
    only_quoteposts: bool

    @property
    def full(self) -> bool:
        return not (self.only_reposts or self.only_quoteposts)


# --- mutes (written by the viewer's own procedures) ---


def mute(conn: Connection, did: str, subject: str, reposts: bool, quotes: bool, at: str) -> None:
    conn.execute(
        "INSERT INTO mute (did, subject, only_reposts, only_quoteposts, created_at)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (did, subject) DO UPDATE SET"
        " only_reposts = excluded.only_reposts, only_quoteposts = excluded.only_quoteposts",
        (did, subject, int(reposts), int(quotes), at),
    )


def unmute(conn: Connection, did: str, subject: str) -> None:
    conn.execute("DELETE FROM mute WHERE did = ? AND subject = ?", (did, subject))


def mute_list(conn: Connection, did: str, list_uri: str, at: str) -> None:
    conn.execute(
        "INSERT INTO list_mute (did, list, created_at) VALUES (?, ?, ?)"
        " ON CONFLICT (did, list) DO NOTHING",
        (did, list_uri, at),
    )


def unmute_list(conn: Connection, did: str, list_uri: str) -> None:
    conn.execute("DELETE FROM list_mute WHERE did = ? AND list = ?", (did, list_uri))


def muted_actors(conn: Connection, did: str, limit: int, cursor: str | None) -> Page:
    """Accounts `did` mutes fully (scoped mutes are not listed, as the reference): items are
    (subject,)."""
    after = parse_cursor(cursor)
    rows = conn.execute(
        "SELECT created_at, subject FROM mute WHERE did = ? AND only_reposts = 0"
        " AND only_quoteposts = 0 AND (created_at, subject) < (?, ?)"
        " ORDER BY created_at DESC, subject DESC LIMIT ?",
        (did, *after, limit),
    ).fetchall()
    return _page(rows, limit)


def blocked_lists(conn: Connection, did: str, limit: int, cursor: str | None) -> Page:
    """The lists `did` subscribes to as block lists: items are (list uri,)."""
    page = edges_from(conn, r.LIST_BLOCK, did, limit, cursor)
    return Page([(subject,) for _, subject in page.items], page.cursor)


def blocked_either_way(conn: Connection, did: str, others: Collection[str]) -> set[str]:
    """Which of `others` block `did` or are blocked by it (by a block record)."""
    return set(edges_by(conn, r.BLOCK, did, others)) | set(edges_to(conn, r.BLOCK, did, others))


def muted_lists(conn: Connection, did: str, limit: int, cursor: str | None) -> Page:
    after = parse_cursor(cursor)
    rows = conn.execute(
        "SELECT created_at, list FROM list_mute WHERE did = ? AND (created_at, list) < (?, ?)"
        " ORDER BY created_at DESC, list DESC LIMIT ?",
        (did, *after, limit),
    ).fetchall()
    return _page(rows, limit)


# --- hydration ---


def mutes(conn: Connection, did: str, subjects: Collection[str]) -> dict[str, Mute]:
    found = {}
    for chunk in _chunks(subjects):
        rows = conn.execute(
            "SELECT subject, only_reposts, only_quoteposts FROM mute"
            f" WHERE did = ? AND subject IN ({_marks(chunk)})",
            [did, *chunk],
        )
        found.update({str(s): Mute(bool(a), bool(b)) for s, a, b in rows})
    return found


def muted_by_list(conn: Connection, did: str, subjects: Collection[str]) -> dict[str, str]:
    """subject → a list the viewer mutes that holds it."""
    found = {}
    for chunk in _chunks(subjects):
        rows = conn.execute(
            "SELECT i.subject, m.list FROM list_mute m JOIN edge i ON i.list = m.list"
            f" WHERE m.did = ? AND i.kind = ? AND i.subject IN ({_marks(chunk)})",
            [did, r.LIST_ITEM, *chunk],
        )
        found.update({str(s): str(u) for s, u in rows})
    return found


def list_mutes(conn: Connection, did: str, lists: Collection[str]) -> set[str]:
    found: set[str] = set()
    for chunk in _chunks(lists):
        rows = conn.execute(
            f"SELECT list FROM list_mute WHERE did = ? AND list IN ({_marks(chunk)})",
            [did, *chunk],
        )
        found.update(str(u) for (u,) in rows)
    return found


def named(conn: Connection, kind: str, uris: Collection[str]) -> dict[str, NamedRow]:
    """Lists (with their item counts) or starter packs by URI."""
    found = {}
    for chunk in _chunks(uris):
        rows = conn.execute(
            "SELECT n.uri, c.cid, n.did, c.json, c.indexed_at,"
            " (SELECT count(*) FROM edge i WHERE i.list = n.uri AND i.kind = ?)"
            " FROM named n JOIN record c ON c.uri = n.uri"
            f" WHERE n.kind = ? AND n.uri IN ({_marks(chunk)})",
            [r.LIST_ITEM, kind, *chunk],
        )
        for uri, cid, did, value, indexed_at, items in rows:
            found[str(uri)] = NamedRow(uri, cid, did, load_json(value), indexed_at, items)
    return found


def joined_counts(
    conn: Connection, packs: Collection[str], since: str
) -> dict[str, tuple[int, int]]:
    """Starter pack → (how many profiles name it as the pack they joined through, how many of
    those were created after `since`): the reference's joinedAllTimeCount and joinedWeekCount."""
    joined = JOINED_VIA["sqlite" if isinstance(conn, sqlite3.Connection) else "postgres"]
    found = {}
    for chunk in _chunks(packs):
        rows = conn.execute(
            f"SELECT {joined}, count(*),"
            " sum(CASE WHEN coalesce(p.created_at, p.indexed_at) > ? THEN 1 ELSE 0 END)"
            " FROM record c JOIN profile p ON p.did = c.did"
            f" WHERE c.collection = '{r.PROFILE}' AND {joined} IN ({_marks(chunk)})"
            f" GROUP BY {joined}",
            [since, *chunk],
        )
        found.update({str(uri): (int(total), int(week)) for uri, total, week in rows})
    return found


# --- skeletons ---


def list_items(conn: Connection, list_uri: str, limit: int, cursor: str | None) -> Page:
    """A list's items, newest first: items are (item uri, subject)."""
    after = parse_cursor(cursor)
    rows = conn.execute(
        "SELECT sort_at, uri, subject FROM edge WHERE list = ? AND kind = ?"
        " AND (sort_at, uri) < (?, ?) ORDER BY sort_at DESC, uri DESC LIMIT ?",
        (list_uri, r.LIST_ITEM, *after, limit),
    ).fetchall()
    return _page(rows, limit)


def owned(
    conn: Connection,
    kind: str,
    did: str,
    limit: int,
    cursor: str | None,
    targets: list[str] | None = None,
) -> Page:
    """Lists (of the given purposes) or starter packs `did` made: items are (uri,)."""
    after = parse_cursor(cursor)
    where, params = "", []
    if targets:
        where, params = f" AND target IN ({_marks(targets)})", targets
    rows = conn.execute(
        f"SELECT sort_at, uri FROM named WHERE kind = ? AND did = ?{where}"
        " AND (sort_at, uri) < (?, ?) ORDER BY sort_at DESC, uri DESC LIMIT ?",
        (kind, did, *params, *after, limit),
    ).fetchall()
    return _page(rows, limit)


def list_sample(conn: Connection, list_uri: str, size: int) -> list[tuple[str, str]]:
    """The first `size` items put on a list: (item uri, subject)."""
    rows = conn.execute(
        "SELECT uri, subject FROM edge WHERE list = ? AND kind = ? ORDER BY sort_at, uri LIMIT ?",
        (list_uri, r.LIST_ITEM, size),
    )
    return [(str(u), str(s)) for u, s in rows]


def relationships(
    conn: Connection, actor: str, others: Collection[str]
) -> dict[str, dict[str, str]]:
    """other → the records relating `actor` to it (app.bsky.graph.defs#relationship fields)."""
    found: dict[str, dict[str, str]] = {did: {} for did in others}
    for chunk in _chunks(others):
        marks = _marks(chunk)
        rows = conn.execute(
            "SELECT subject, CASE kind WHEN ? THEN 'following' ELSE 'blocking' END, uri"
            f" FROM edge WHERE kind IN (?, ?) AND did = ? AND subject IN ({marks})"
            " UNION ALL SELECT did, CASE kind WHEN ? THEN 'followedBy' ELSE 'blockedBy' END, uri"
            f" FROM edge WHERE kind IN (?, ?) AND subject = ? AND did IN ({marks})"
            " UNION ALL SELECT i.subject, 'blockingByList', b.uri FROM edge b"
            " JOIN edge i ON i.list = b.subject AND i.kind = ?"
            f" WHERE b.kind = ? AND b.did = ? AND i.subject IN ({marks})"
            " UNION ALL SELECT b.did, 'blockedByList', b.uri FROM edge b"
            " JOIN edge i ON i.list = b.subject AND i.kind = ?"
            f" WHERE b.kind = ? AND i.subject = ? AND b.did IN ({marks})",
            [
                *(r.FOLLOW, r.FOLLOW, r.BLOCK, actor, *chunk),
                *(r.FOLLOW, r.FOLLOW, r.BLOCK, actor, *chunk),
                *(r.LIST_ITEM, r.LIST_BLOCK, actor, *chunk),
                *(r.LIST_ITEM, r.LIST_BLOCK, actor, *chunk),
            ],
        )
        for did, key, uri in rows:
            found[str(did)][str(key)] = str(uri)
    return found

"""SQL for threadgates and postgates (lexicons app/bsky/feed/threadgate, postgate): the gate
records of given posts, the lists their rules name, and list membership."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from appview import records as r
from appview.db.reads import _chunks, _marks, load_json
from runtime.sql import Connection


def records(
    conn: Connection, collection: str, uris: Collection[str]
) -> dict[str, tuple[str, dict[str, Any], str]]:
    """uri → (cid, JSON value, indexed_at) of the records of `collection` (a list or a gate:
    appview.records.NAMED_TARGET) among `uris`. They are looked for in the small `named` table,
    which holds every such record's URI, before the record table: most posts have no gates,
    and a miss there costs far less than one among every record."""
    found = {}
    for chunk in _chunks(uris):
        rows = conn.execute(
            # SQLite walks a CROSS JOIN's left table first; PostgreSQL plans it as any join.
            "SELECT c.uri, c.cid, c.json, c.indexed_at FROM named n CROSS JOIN record c"
            f" WHERE c.uri = n.uri AND n.kind = ? AND n.uri IN ({_marks(chunk)})",
            [collection, *chunk],
        )
        found.update({str(u): (str(c), load_json(j), str(t)) for u, c, j, t in rows})
    return found


def lists_with(conn: Connection, did: str, lists: Collection[str]) -> set[str]:
    """Which of `lists` have `did` as a member."""
    found: set[str] = set()
    for chunk in _chunks(lists):
        rows = conn.execute(
            "SELECT DISTINCT list FROM edge WHERE kind = ? AND subject = ?"
            f" AND list IN ({_marks(chunk)})",
            [r.LIST_ITEM, did, *chunk],
        )
        found.update(str(u) for (u,) in rows)
    return found


def list_sizes(conn: Connection, lists: Collection[str]) -> dict[str, int]:
    found = {}
    for chunk in _chunks(lists):
        rows = conn.execute(
            f"SELECT list, count(*) FROM edge WHERE kind = ? AND list IN ({_marks(chunk)})"
            " GROUP BY list",
            [r.LIST_ITEM, *chunk],
        )
        found.update({str(u): int(n) for u, n in rows})
    return found


def violations(conn: Connection, uris: Collection[str]) -> dict[str, tuple[bool, bool]]:
    """uri → (violates its thread's gate, violates its quoted post's postgate), for the posts
    among `uris` that violate either."""
    found = {}
    for chunk in _chunks(uris):
        rows = conn.execute(
            "SELECT uri, thread_gate, embedding FROM post_violation"
            f" WHERE uri IN ({_marks(chunk)})",
            chunk,
        )
        found.update({str(u): (bool(t), bool(e)) for u, t, e in rows})
    return found


def set_violations(conn: Connection, uri: str, thread: bool, embedding: bool) -> None:
    if thread or embedding:
        conn.execute(
            "INSERT INTO post_violation (uri, thread_gate, embedding) VALUES (?, ?, ?)",
            (uri, int(thread), int(embedding)),
        )


def delete_violations(conn: Connection, uri: str) -> bool:
    """Forget a deleted post's violations; whether it violated its thread's gate."""
    row = conn.execute("SELECT thread_gate FROM post_violation WHERE uri = ?", (uri,)).fetchone()
    conn.execute("DELETE FROM post_violation WHERE uri = ?", (uri,))
    return row is not None and bool(row[0])

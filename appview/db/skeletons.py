"""The skeleton queries of the read API (STYLE.md #17): each returns a page of keys ordered
newest first and an opaque cursor, `<sort_at>::<key>`, that resumes strictly after the last
item, so pages stay stable while new records arrive."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Final

from appview import records as r
from appview.db.reads import Page
from atcore.syntax.datetime import format_datetime
from atcore.xrpc.errors import InvalidRequest
from runtime.sql import Connection

_SEP: Final = "::"
# A cursor sorts after every real item, so an absent cursor means "from the newest".
_TOP: Final = ("\uffff", "\uffff")
# Above every notification id (SQLite's largest integer).
_NO_ID: Final = 2**63 - 1
# Priority notifications: from accounts the recipient follows (the reference's filter).
_FROM_FOLLOWED: Final = " AND n.author IN (SELECT subject FROM edge WHERE kind = ? AND did = ?)"

# Whose items a timeline shows: the accounts the viewer follows, and the viewer.
_AUTHORS: Final = "SELECT subject AS did FROM edge WHERE kind = ? AND did = ? UNION SELECT ?"
# Authors named in one statement.
_CHUNK: Final = 5_000
# The windows of time a timeline page is looked for in, before the newest item: each four
# times the last, so the one that fills the page reads at most about four times what it needs.
_WINDOWS: Final = tuple(timedelta(hours=4**n) for n in range(5))

AUTHOR_FILTERS: Final = {
    "posts_with_replies": "",
    "posts_no_replies": " AND (p.uri IS NULL OR p.reply_parent IS NULL OR f.uri != f.post)",
    "posts_with_media": " AND f.uri = f.post AND p.media >= 1",
    "posts_with_video": " AND f.uri = f.post AND p.media = 2",
    "posts_and_author_threads": (
        " AND (f.uri != f.post OR p.reply_parent IS NULL"
        " OR p.reply_root LIKE 'at://' || f.did || '/%')"
    ),
}


def parse_cursor(cursor: str | None) -> tuple[str, str]:
    if cursor is None:
        return _TOP
    sort_at, sep, key = cursor.partition(_SEP)
    if not sep or r.normalize_time(sort_at) != sort_at or not key:
        raise InvalidRequest("malformed cursor")
    return sort_at, key


def _page(rows: list[Any], limit: int) -> Page:
    """Rows are (sort_at, key, ...); the cursor follows the last when the page is full."""
    cursor = f"{rows[-1][0]}{_SEP}{rows[-1][1]}" if len(rows) == limit else None
    return Page([tuple(row[1:]) for row in rows], cursor)


def timeline(conn: Connection, viewer: str, limit: int, cursor: str | None) -> Page:
    """Posts and reposts by the viewer and everyone the viewer follows: items are (item uri,
    post uri, author or reposter, when, the repost's cid or None for a post).

    Sorting every item of hundreds of followed accounts to keep the newest `limit` would read
    them all. Instead each author's newest item before the cursor is probed (one index seek
    each), and the page is looked for in growing windows of time ending at the newest of
    those, each window reading only the authors with an item in it: the first window that
    fills the page ends the search, and none reaches further back than the `limit`-th newest
    author's newest item (that far back, each of `limit` authors has one). The windows
    together cover everything before the cursor, so the page is the one a full sort would
    give."""
    after = parse_cursor(cursor)
    newest = conn.execute(
        "SELECT (SELECT max(f.sort_at) FROM feed_item f WHERE f.did = a.did AND f.sort_at <= ?),"
        f" a.did FROM ({_AUTHORS}) a",
        (after[0], r.FOLLOW, viewer, viewer),
    ).fetchall()
    authors = sorted(((at, did) for at, did in newest if at is not None), reverse=True)
    rows: list[Any] = []
    if not authors:
        return _page(rows, limit)
    top = datetime.fromisoformat(authors[0][0].replace("Z", "+00:00"))
    floors = [format_datetime(top - span) for span in _WINDOWS]
    if len(authors) >= limit:
        # `limit` authors have an item no older than the newest of the limit-th: a window
        # reaching back to it holds a page, and no wider one is needed.
        enough = authors[limit - 1][0]
        floors = [floor for floor in floors if floor > enough] + [enough]
    for floor in (*floors, ""):
        active = [did for at, did in authors if at >= floor]
        found = []
        for chunk in _chunks(active):
            found += conn.execute(
                # Only a repost's view names its record's cid: a post's is not looked up.
                "SELECT i.sort_at, i.uri, i.post, i.did, i.sort_at, CASE WHEN i.uri = i.post"
                " THEN NULL ELSE (SELECT r.cid FROM record r WHERE r.uri = i.uri) END FROM ("
                " SELECT f.sort_at, f.uri, f.post, f.did FROM feed_item f"
                f" WHERE f.did IN ({','.join('?' * len(chunk))})"
                " AND (f.sort_at, f.uri) < (?, ?) AND f.sort_at >= ?"
                " ORDER BY f.sort_at DESC, f.uri DESC LIMIT ?) i",
                (*chunk, *after, floor, limit - len(rows)),
            ).fetchall()
        found.sort(key=lambda row: (row[0], row[1]), reverse=True)
        rows += found[: limit - len(rows)]
        if len(rows) == limit or not floor:
            break
        after = (floor, "")  # the next window ends where this one began
    return _page(rows, limit)


def _chunks(values: list[str]) -> list[list[str]]:
    """Bound the variables of one statement (SQLite allows 32,766)."""
    return [values[i : i + _CHUNK] for i in range(0, len(values), _CHUNK)]


def author_feed(conn: Connection, did: str, filter_: str, limit: int, cursor: str | None) -> Page:
    after = parse_cursor(cursor)
    rows = conn.execute(
        "SELECT f.sort_at, f.uri, f.post, f.did, f.sort_at, r.cid FROM feed_item f"
        " JOIN record r ON r.uri = f.uri LEFT JOIN post p ON p.uri = f.post"
        f" WHERE f.did = ? AND (f.sort_at, f.uri) < (?, ?){AUTHOR_FILTERS[filter_]}"
        " ORDER BY f.sort_at DESC, f.uri DESC LIMIT ?",
        (did, *after, limit),
    ).fetchall()
    return _page(rows, limit)


def edges_of(conn: Connection, kind: str, subject: str, limit: int, cursor: str | None) -> Page:
    """Records of `kind` about `subject` (likes of a post, followers of an actor): items are
    (uri, did, created_at)."""
    after = parse_cursor(cursor)
    rows = conn.execute(
        "SELECT sort_at, uri, did, created_at FROM edge WHERE kind = ? AND subject = ?"
        " AND (sort_at, uri) < (?, ?) ORDER BY sort_at DESC, uri DESC LIMIT ?",
        (kind, subject, *after, limit),
    ).fetchall()
    return _page(rows, limit)


def edges_from(conn: Connection, kind: str, did: str, limit: int, cursor: str | None) -> Page:
    """Records of `kind` by `did` (whom an actor follows): items are (uri, subject)."""
    after = parse_cursor(cursor)
    rows = conn.execute(
        "SELECT sort_at, uri, subject FROM edge WHERE kind = ? AND did = ?"
        " AND (sort_at, uri) < (?, ?) ORDER BY sort_at DESC, uri DESC LIMIT ?",
        (kind, did, *after, limit),
    ).fetchall()
    return _page(rows, limit)


def thread(
    conn: Connection, uri: str, depth: int, parent_height: int, max_replies: int
) -> tuple[list[tuple[str, str | None]], list[tuple[str, str]]]:
    """(ancestors as (uri, its parent) from the anchor up, descendants as (uri, parent))."""
    ancestors = conn.execute(
        "WITH RECURSIVE up(uri, parent, height) AS ("
        " SELECT uri, reply_parent, 0 FROM post WHERE uri = ?"
        " UNION ALL SELECT p.uri, p.reply_parent, up.height + 1 FROM post p"
        " JOIN up ON p.uri = up.parent WHERE up.height < ?)"
        " SELECT uri, parent FROM up ORDER BY height",
        (uri, parent_height),
    ).fetchall()
    descendants = conn.execute(
        "WITH RECURSIVE down(uri, parent, depth) AS ("
        " SELECT uri, reply_parent, 1 FROM post WHERE reply_parent = ? AND ? > 0"
        " UNION ALL SELECT p.uri, p.reply_parent, down.depth + 1 FROM post p"
        " JOIN down ON p.reply_parent = down.uri WHERE down.depth < ?)"
        " SELECT uri, parent FROM down LIMIT ?",
        (uri, depth, depth, max_replies),
    ).fetchall()
    return ancestors, descendants


def notifications(
    conn: Connection,
    did: str,
    reasons: list[str] | None,
    limit: int,
    cursor: str | None,
    priority: bool = False,
) -> Page:
    """A recipient's notifications (with `priority`, only from accounts it follows): items
    are (id, sort time, author, uri, cid, reason, reason_subject, record json)."""
    sort_at, key = parse_cursor(cursor)
    after_id = _NO_ID
    if cursor is not None:
        if not (key.isascii() and key.isdigit() and len(key) <= 18):
            raise InvalidRequest("malformed cursor")
        after_id = int(key)
    where = ""
    params: list[Any] = [did, sort_at, after_id]
    if reasons:
        where = f" AND n.reason IN ({','.join('?' * len(reasons))})"
        params += reasons
    if priority:
        where += _FROM_FOLLOWED
        params += [r.FOLLOW, did]
    rows = conn.execute(
        "SELECT n.sort_at, n.id, n.sort_at, n.author, n.uri, n.cid, n.reason,"
        " n.reason_subject, r.json FROM notification n JOIN record r ON r.uri = n.uri"
        f" WHERE n.did = ? AND (n.sort_at, n.id) < (?, ?){where}"
        # As the reference: a notification about a record since deleted is not listed.
        " AND (n.reason_subject IS NULL"
        " OR EXISTS (SELECT 1 FROM record s WHERE s.uri = n.reason_subject))"
        " ORDER BY n.sort_at DESC, n.id DESC LIMIT ?",
        [*params, limit],
    ).fetchall()
    return _page(rows, limit)


def unread_authors(
    conn: Connection, did: str, since: str | None, priority: bool = False
) -> list[str]:
    """Authors of the notifications newer than `since` (one per notification)."""
    where, params = (_FROM_FOLLOWED, [r.FOLLOW, did]) if priority else ("", [])
    rows = conn.execute(
        f"SELECT author FROM notification n WHERE did = ? AND sort_at > ?{where}",
        [did, since or "", *params],
    ).fetchall()
    return [str(a) for (a,) in rows]


def seen_at(conn: Connection, did: str) -> str | None:
    row = conn.execute("SELECT seen_at FROM notification_seen WHERE did = ?", (did,)).fetchone()
    return None if row is None else str(row[0])


def update_seen(conn: Connection, did: str, seen: str) -> None:
    conn.execute(
        "INSERT INTO notification_seen (did, seen_at) VALUES (?, ?)"
        " ON CONFLICT (did) DO UPDATE SET seen_at = CASE"
        " WHEN excluded.seen_at > notification_seen.seen_at THEN excluded.seen_at"
        " ELSE notification_seen.seen_at END",
        (did, seen),
    )

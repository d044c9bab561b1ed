"""SQL for the read API: the rows hydration loads in batches (appview.hydration) and the
skeleton queries each endpoint starts from (lists of URIs or DIDs with a cursor)."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson

from appview import records as r
from runtime.sql import Connection

# SQLite binds at most 32,766 variables; batches stay far below.
_CHUNK: Final = 500


@dataclass(frozen=True, slots=True)
class ActorRow:
    did: str
    handle: str | None
    status: str | None
    display_name: str | None
    description: str | None
    avatar: str | None
    banner: str | None
    pinned_post: str | None
    created_at: str | None
    indexed_at: str
    followers: int
    follows: int
    posts: int
    lists: int
    feeds: int
    starter_packs: int
    pinned_cid: str | None
    # allowSubscriptions of the app.bsky.notification.declaration record, if any
    allow_subscriptions: str | None


@dataclass(frozen=True, slots=True)
class PostRow:
    uri: str
    did: str
    cid: str
    record: dict[str, Any]
    indexed_at: str
    reply_root: str | None
    reply_parent: str | None
    likes: int
    reposts: int
    replies: int
    quotes: int


@dataclass(frozen=True, slots=True)
class Standing:
    """Which kinds of block and mute involve a viewer at all. Most viewers have none of
    several, and each relation query skipped saves an index lookup per actor of a response."""

    blocks: bool  # the viewer blocks someone
    blocked: bool  # someone blocks the viewer
    list_blocks: bool  # the viewer subscribes to a block list
    mutes: bool
    list_mutes: bool


@dataclass(frozen=True, slots=True)
class Page:
    """A skeleton: keys in order (URIs or DIDs, with what each endpoint needs) and a cursor."""

    items: list[tuple[Any, ...]]
    cursor: str | None


def _chunks(values: Collection[str]) -> list[list[str]]:
    ordered = list(values)
    return [ordered[i : i + _CHUNK] for i in range(0, len(ordered), _CHUNK)]


def _marks(values: Sequence[str]) -> str:
    return ",".join("?" * len(values))


def load_json(text: str) -> Any:
    """A stored record's JSON value (appview.db.index writes it with json.dumps). orjson reads
    it into the same values at about a third of json's CPU, which a page of posts pays once per
    post; what orjson refuses (an integer beyond 64 bits) json reads as before."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def actors(conn: Connection, dids: Collection[str]) -> dict[str, ActorRow]:
    found = {}
    for chunk in _chunks(dids):
        rows = conn.execute(
            "SELECT a.did, a.handle, a.status, p.display_name, p.description, p.avatar,"
            " p.banner, p.pinned_post, p.created_at, coalesce(p.indexed_at, a.indexed_at),"
            " coalesce(g.followers, 0), coalesce(g.follows, 0), coalesce(g.posts, 0),"
            " coalesce(g.lists, 0), coalesce(g.feeds, 0), coalesce(g.starter_packs, 0),"
            " pin.cid, d.json"
            " FROM actor a LEFT JOIN profile p ON p.did = a.did"
            " LEFT JOIN profile_agg g ON g.did = a.did"
            " LEFT JOIN post pin ON pin.uri = p.pinned_post"
            " LEFT JOIN record d ON d.uri = 'at://' || a.did || ?"
            f" WHERE a.did IN ({_marks(chunk)})",
            [f"/{r.NOTIFICATION_DECLARATION}/self", *chunk],
        )
        for *row, declaration in rows:
            allow = (
                None if declaration is None else load_json(declaration).get("allowSubscriptions")
            )
            found[row[0]] = ActorRow(*[*row, allow])
    return found


def posts(conn: Connection, uris: Collection[str]) -> dict[str, PostRow]:
    found = {}
    for chunk in _chunks(uris):
        rows = conn.execute(
            "SELECT p.uri, p.did, p.cid, r.json, p.indexed_at, p.reply_root, p.reply_parent,"
            " coalesce(g.likes, 0), coalesce(g.reposts, 0), coalesce(g.replies, 0),"
            " coalesce(g.quotes, 0)"
            # From the post (SQLite walks a CROSS JOIN's left table first): from the record,
            # SQLite's choice, each row's URI is also checked against the list again.
            " FROM post p CROSS JOIN record r LEFT JOIN post_agg g ON g.uri = p.uri"
            f" WHERE r.uri = p.uri AND p.uri IN ({_marks(chunk)})",
            chunk,
        )
        for row in rows:
            found[row[0]] = PostRow(row[0], row[1], row[2], load_json(row[3]), *row[4:])
    return found


def edges_by(conn: Connection, kind: str, did: str, subjects: Collection[str]) -> dict[str, str]:
    """subject → uri of `did`'s record of `kind` about it (the viewer's like, follow, ...)."""
    found = {}
    for chunk in _chunks(subjects):
        rows = conn.execute(
            f"SELECT subject, uri FROM edge WHERE kind = ? AND did = ?"
            f" AND subject IN ({_marks(chunk)})",
            [kind, did, *chunk],
        )
        found.update({str(s): str(u) for s, u in rows})
    return found


def standing(conn: Connection, viewer: str) -> Standing:
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM edge WHERE kind = ? AND did = ?),"
        " EXISTS (SELECT 1 FROM edge WHERE kind = ? AND subject = ?),"
        " EXISTS (SELECT 1 FROM edge WHERE kind = ? AND did = ?),"
        " EXISTS (SELECT 1 FROM mute WHERE did = ?),"
        " EXISTS (SELECT 1 FROM list_mute WHERE did = ?)",
        (r.BLOCK, viewer, r.BLOCK, viewer, r.LIST_BLOCK, viewer, viewer, viewer),
    ).fetchone()
    return Standing(*(bool(value) for value in row))


def known_followers(
    conn: Connection, viewer: str, subjects: Collection[str]
) -> dict[str, list[str]]:
    """subject → the accounts the viewer follows that follow it, in the order the viewer
    followed them (app.bsky.actor.defs#knownFollowers).

    The join is walked from whichever side has fewer follows to look at: the subjects'
    followers (few for most accounts, tens of thousands for a popular one), or the viewer's
    follows (one lookup per subject each). SQLite's planner, which knows the average and not
    the subject, would read every follower of a popular account."""
    found: dict[str, list[str]] = {}
    for chunk in _chunks(subjects):
        counts = conn.execute(
            f"SELECT did, followers, follows FROM profile_agg WHERE did IN ({_marks(chunk)}, ?)",
            [*chunk, viewer],
        ).fetchall()
        followers = sum(n for did, n, _ in counts if did != viewer)
        follows = next((n for did, _, n in counts if did == viewer), 0)
        # SQLite walks a CROSS JOIN's left table first; PostgreSQL plans it as any join.
        join = "CROSS JOIN" if follows * len(chunk) < followers else ","
        rows = conn.execute(
            f"SELECT s.subject, v.subject FROM edge v {join} edge s"
            " WHERE s.kind = v.kind AND s.did = v.subject"
            f" AND v.kind = ? AND v.did = ? AND s.subject IN ({_marks(chunk)})"
            " ORDER BY v.sort_at, v.uri",
            [r.FOLLOW, viewer, *chunk],
        )
        for subject, follower in rows:
            found.setdefault(str(subject), []).append(str(follower))
    return found


def blocks_among(conn: Connection, dids: Collection[str]) -> set[tuple[str, str]]:
    """(blocker, blocked) for every block record between two of `dids`."""
    found: set[tuple[str, str]] = set()
    wanted = set(dids)
    for chunk in _chunks(dids):
        rows = conn.execute(
            f"SELECT did, subject FROM edge WHERE kind = ? AND did IN ({_marks(chunk)})",
            [r.BLOCK, *chunk],
        )
        found.update((str(d), str(s)) for d, s in rows if s in wanted)
    return found


def edges_to(conn: Connection, kind: str, subject: str, dids: Collection[str]) -> dict[str, str]:
    """did → uri of its record of `kind` about `subject` (who follows or blocks the viewer)."""
    found = {}
    for chunk in _chunks(dids):
        rows = conn.execute(
            f"SELECT did, uri FROM edge WHERE kind = ? AND subject = ?"
            f" AND did IN ({_marks(chunk)})",
            [kind, subject, *chunk],
        )
        found.update({str(d): str(u) for d, u in rows})
    return found


def list_blocks(conn: Connection, viewer: str, dids: Collection[str]) -> dict[str, str]:
    """did → the list (a list block of the viewer's) that blocks it."""
    found = {}
    for chunk in _chunks(dids):
        rows = conn.execute(
            "SELECT i.subject, b.subject FROM edge b JOIN edge i ON i.list = b.subject"
            f" WHERE b.kind = ? AND b.did = ? AND i.kind = ? AND i.subject IN ({_marks(chunk)})",
            [r.LIST_BLOCK, viewer, r.LIST_ITEM, *chunk],
        )
        found.update({str(d): str(u) for d, u in rows})
    return found


def list_blocked_by(conn: Connection, viewer: str, dids: Collection[str]) -> set[str]:
    """Which of `dids` block the viewer through a list they subscribe to as a block list."""
    found: set[str] = set()
    for chunk in _chunks(dids):
        rows = conn.execute(
            "SELECT b.did FROM edge b JOIN edge i ON i.list = b.subject"
            f" WHERE b.kind = ? AND i.kind = ? AND i.subject = ? AND b.did IN ({_marks(chunk)})",
            [r.LIST_BLOCK, r.LIST_ITEM, viewer, *chunk],
        )
        found.update(str(d) for (d,) in rows)
    return found


def did_for_handle(conn: Connection, handle: str) -> str | None:
    row = conn.execute(
        "SELECT did FROM actor WHERE handle = ? ORDER BY indexed_at DESC LIMIT 1", (handle,)
    ).fetchone()
    return None if row is None else str(row[0])

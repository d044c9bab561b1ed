"""SQL for feed generators and curation-list feeds (lexicons app/bsky/feed/generator,
getFeedGenerator(s), getActorFeeds, getListFeed, getFeed): generator records with their like
counts, an actor's generators, the posts of a list's members, and the reposts a generator's
skeleton names."""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from appview import records as r
from appview.db import reads
from appview.db.reads import Page, _chunks, _marks
from appview.db.skeletons import _page, parse_cursor
from runtime.sql import Connection


@dataclass(frozen=True, slots=True)
class GeneratorRow:
    uri: str
    cid: str
    creator: str
    record: dict[str, Any]
    indexed_at: str
    likes: int


def generators(conn: Connection, uris: Collection[str]) -> dict[str, GeneratorRow]:
    found = {}
    for chunk in _chunks(uris):
        rows = conn.execute(
            "SELECT c.uri, c.cid, c.did, c.json, c.indexed_at, coalesce(g.likes, 0)"
            " FROM record c LEFT JOIN post_agg g ON g.uri = c.uri"
            f" WHERE c.collection = ? AND c.uri IN ({_marks(chunk)})",
            [r.GENERATOR, *chunk],
        )
        for uri, cid, did, text, indexed_at, likes in rows:
            found[uri] = GeneratorRow(uri, cid, did, json.loads(text), indexed_at, likes)
    return found


def actor_feeds(conn: Connection, did: str, limit: int, cursor: str | None) -> Page:
    """An actor's feed generators, newest first: items are (uri,)."""
    after = parse_cursor(cursor)
    rows = conn.execute(
        "SELECT sort_at, uri FROM named WHERE kind = ? AND did = ?"
        " AND (sort_at, uri) < (?, ?) ORDER BY sort_at DESC, uri DESC LIMIT ?",
        (r.GENERATOR, did, *after, limit),
    ).fetchall()
    return _page(rows, limit)


def list_feed(conn: Connection, list_uri: str, limit: int, cursor: str | None) -> Page:
    """Posts (not reposts) by the members of a list, newest first: items as getTimeline's
    (item uri, post uri, author, when, item cid)."""
    after = parse_cursor(cursor)
    rows = conn.execute(
        "SELECT f.sort_at, f.uri, f.post, f.did, f.sort_at, c.cid FROM feed_item f"
        " JOIN record c ON c.uri = f.uri"
        " WHERE f.did IN (SELECT subject FROM edge WHERE kind = ? AND list = ?)"
        " AND f.uri = f.post AND (f.sort_at, f.uri) < (?, ?)"
        " ORDER BY f.sort_at DESC, f.uri DESC LIMIT ?",
        (r.LIST_ITEM, list_uri, *after, limit),
    ).fetchall()
    return _page(rows, limit)


def blocks_with(conn: Connection, did: str, others: Collection[str]) -> set[str]:
    """Which of `others` block `did` or are blocked by it."""
    blocking = reads.edges_by(conn, r.BLOCK, did, others)
    return set(blocking) | set(reads.edges_to(conn, r.BLOCK, did, others))


def reposts(conn: Connection, uris: Collection[str]) -> dict[str, tuple[str, str, str, str]]:
    """repost uri → (reposted post uri, reposter, when, the repost's cid) for the reposts
    among `uris`."""
    found = {}
    for chunk in _chunks(uris):
        rows = conn.execute(
            "SELECT e.uri, e.subject, e.did, e.sort_at, c.cid FROM edge e"
            " JOIN record c ON c.uri = e.uri"
            f" WHERE e.kind = ? AND e.uri IN ({_marks(chunk)})",
            [r.REPOST, *chunk],
        )
        found.update({str(u): (str(s), str(d), str(t), str(c)) for u, s, d, t, c in rows})
    return found


def record(conn: Connection, uri: str) -> tuple[str, dict[str, Any]] | None:
    """(cid, JSON value) of any indexed record."""
    row = conn.execute("SELECT cid, json FROM record WHERE uri = ?", (uri,)).fetchone()
    return None if row is None else (str(row[0]), json.loads(row[1]))

"""SQL for search and discovery (lexicons app/bsky/feed/searchPosts, actor/searchActors,
actor/searchActorsTypeahead, actor/getSuggestions): post text and profiles through the FTS5
tables the schema keeps in step with the index, handles by prefix.

Full-text terms reach FTS5 only as quoted phrases, so no query text is ever FTS5 syntax.
PostgreSQL has no FTS5: post text is matched there through the GIN-indexed tsvector the
schema keeps (each term a phrase, folded alike); for actors each term is a word prefix of the
profile text, matched case-insensitively by a regular expression at read time. Ranked results
page by an offset cursor, newest-first results by `<sort_at>::<uri>`."""

from __future__ import annotations

import json
import re
import sqlite3
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Final

from appview import records as r
from appview.db.graph_reads import blocked_either_way
from appview.db.reads import Page
from appview.db.schema import FOLD
from appview.db.skeletons import _page, parse_cursor
from atcore.xrpc.errors import InvalidRequest
from runtime.sql import Connection

# How far an offset cursor may page into ranked results.
MAX_OFFSET: Final = 10_000


@dataclass(frozen=True)
class PostQuery:
    """What searchPosts asks for, parsed from `q` and the explicit parameters."""

    terms: list[str]
    author: str | None = None
    since: str | None = None
    until: str | None = None
    lang: str | None = None
    url: str | None = None
    mentions: str | None = None
    domain: str | None = None
    tags: list[str] = field(default_factory=list)
    top: bool = False


def phrases(terms: list[str], prefix: bool = False) -> str:
    """An FTS5 query matching every term, each quoted as a phrase."""
    star = "*" if prefix else ""
    return " ".join('"' + term.replace('"', '""') + '"' + star for term in terms)


def _words(column: str, terms: list[str], prefix: bool = False) -> tuple[str, list[str]]:
    """PostgreSQL's stand-in for an FTS5 match: `column` holds every term as a word, case and
    diacritics folded as FTS5's unicode61 folds them."""
    end = "" if prefix else "\\M"
    folded = f"regexp_replace(normalize({column}, NFD), '[\\u0300-\\u036f]', '', 'g')"
    clause = " AND ".join(f"{folded} ~* ?" for _ in terms)
    return f"({clause})", ["\\m" + re.escape(_unaccented(term)) + end for term in terms]


def _unaccented(text: str) -> str:
    decomposed = unicodedata.normalize("NFD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def parse_offset(cursor: str | None) -> int:
    if cursor is None:
        return 0
    if not (cursor.isascii() and cursor.isdigit() and int(cursor) <= MAX_OFFSET):
        raise InvalidRequest("malformed cursor")
    return int(cursor)


def _next_offset(offset: int, found: int, limit: int) -> str | None:
    return str(offset + limit) if found == limit and offset + limit <= MAX_OFFSET else None


def posts(conn: Connection, query: PostQuery, limit: int, cursor: str | None) -> Page:
    """Matching posts, newest first or by engagement (`top`): items are (uri,)."""
    where, params = [], []
    source = "post p"
    if query.terms and isinstance(conn, sqlite3.Connection):
        source = "post_fts f JOIN record c ON c.rowid = f.rowid JOIN post p ON p.uri = c.uri"
        where.append("post_fts MATCH ?")
        params.append(phrases(query.terms))
    elif query.terms:
        # Each term a phrase of the folded words, as FTS5 reads a quoted term.
        source = "record c JOIN post p ON p.uri = c.uri"
        match = f"c.post_text @@ phraseto_tsquery('simple', {FOLD.format('CAST(? AS TEXT)')})"
        where += [match] * len(query.terms)
        params += query.terms
    for clause, value in (
        ("p.did = ?", query.author),
        ("p.sort_at >= ?", query.since),
        ("p.sort_at < ?", query.until),
        ("',' || p.langs || ',' LIKE ?", query.lang and f"%,{query.lang},%"),
        ("EXISTS (SELECT 1 FROM post_link l WHERE l.uri = p.uri AND l.target = ?)", query.url),
        ("EXISTS (SELECT 1 FROM post_mention m WHERE m.uri = p.uri AND m.did = ?)", query.mentions),
    ):
        if value is not None:
            where.append(clause)
            params.append(value)
    if query.domain is not None:
        where.append(
            "EXISTS (SELECT 1 FROM post_link l WHERE l.uri = p.uri AND (lower(l.target) IN (?, ?)"
            " OR lower(l.target) LIKE ? ESCAPE '\\' OR lower(l.target) LIKE ? ESCAPE '\\'))"
        )
        host = query.domain.lower()
        like = host.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        params += [f"https://{host}", f"http://{host}", f"https://{like}/%", f"http://{like}/%"]
    for tag in query.tags:
        where.append("EXISTS (SELECT 1 FROM post_tag t WHERE t.uri = p.uri AND t.tag = ?)")
        params.append(tag)
    if query.top:
        offset = parse_offset(cursor)
        filters = " AND ".join(where) or "TRUE"
        rows = conn.execute(
            f"SELECT p.uri FROM {source} LEFT JOIN post_agg g ON g.uri = p.uri WHERE {filters}"
            " ORDER BY coalesce(g.likes + g.reposts + g.replies + g.quotes, 0) DESC,"
            " p.sort_at DESC, p.uri DESC LIMIT ? OFFSET ?",
            [*params, limit, offset],
        ).fetchall()
        return Page([(uri,) for (uri,) in rows], _next_offset(offset, len(rows), limit))
    where.append("(p.sort_at, p.uri) < (?, ?)")
    params += parse_cursor(cursor)
    rows = conn.execute(
        f"SELECT p.sort_at, p.uri FROM {source} WHERE {' AND '.join(where)}"
        " ORDER BY p.sort_at DESC, p.uri DESC LIMIT ?",
        [*params, limit],
    ).fetchall()
    return _page(rows, limit)


def actors(
    conn: Connection, terms: list[str], limit: int, offset: int = 0
) -> tuple[list[str], str | None]:
    """Active accounts whose handle starts with the query or whose display name or
    description match every term as a word prefix: an exact handle first, then by
    followers. Returns DIDs and the next cursor."""
    if not terms:
        return [], None
    handle = "".join(terms).lower().removeprefix("@")
    if isinstance(conn, sqlite3.Connection):
        profiles = (
            "SELECT p.did FROM profile_fts JOIN profile p ON p.rowid = profile_fts.rowid"
            " WHERE profile_fts MATCH ?"
        )
        words = [phrases(terms, prefix=True)]
    else:
        text = "coalesce(display_name, '') || ' ' || coalesce(description, '')"
        clause, words = _words(text, terms, prefix=True)
        profiles = f"SELECT did FROM profile WHERE {clause}"
    rows = conn.execute(
        "SELECT a.did FROM actor a LEFT JOIN profile_agg g ON g.did = a.did"
        " WHERE a.status IS NULL AND a.handle IS NOT NULL AND a.did IN ("
        f" SELECT did FROM actor WHERE handle >= ? AND handle < ? UNION {profiles})"
        " ORDER BY a.handle = ? DESC, coalesce(g.followers, 0) DESC, a.did LIMIT ? OFFSET ?",
        # The handle range is its prefix's, so the handle index answers it.
        (handle, handle + "\uffff", *words, handle, limit, offset),
    ).fetchall()
    return [str(d) for (d,) in rows], _next_offset(offset, len(rows), limit)


def exact_handle(conn: Connection, terms: list[str]) -> str | None:
    handle = "".join(terms).lower().removeprefix("@")
    row = conn.execute("SELECT did FROM actor WHERE handle = ?", (handle,)).fetchone()
    return None if row is None else str(row[0])


def suggestions(
    conn: Connection, viewer: str | None, limit: int, offset: int
) -> tuple[list[str], str | None]:
    """Active accounts by followers, without the viewer, whom it follows, blocks or mutes."""
    rows = conn.execute(
        "SELECT a.did FROM actor a LEFT JOIN profile_agg g ON g.did = a.did"
        " WHERE a.status IS NULL AND a.handle IS NOT NULL AND a.did != ?"
        " AND a.did NOT IN (SELECT subject FROM edge WHERE kind IN (?, ?) AND did = ?)"
        " AND a.did NOT IN (SELECT subject FROM mute WHERE did = ?)"
        " ORDER BY coalesce(g.followers, 0) DESC, coalesce(g.posts, 0) DESC, a.did"
        " LIMIT ? OFFSET ?",
        (viewer or "", r.FOLLOW, r.BLOCK, viewer or "", viewer or "", limit, offset),
    ).fetchall()
    return [str(d) for (d,) in rows], _next_offset(offset, len(rows), limit)


def quotes(conn: Connection, uri: str, limit: int, cursor: str | None) -> Page:
    """Posts quoting `uri`, newest first: items are (uri,). As the reference, quotes by
    accounts blocking or blocked by the quoted author, and quotes the author detached with a
    postgate, are left out."""
    after = parse_cursor(cursor)
    rows: list[Any] = conn.execute(
        "SELECT sort_at, uri FROM post WHERE quote = ? AND (sort_at, uri) < (?, ?)"
        " ORDER BY sort_at DESC, uri DESC LIMIT ?",
        (uri, *after, limit),
    ).fetchall()
    page = _page(rows, limit)
    author = r.uri_did(uri)
    blocked = blocked_either_way(conn, author, {r.uri_did(q) for (q,) in page.items})
    gate = conn.execute(
        "SELECT c.json FROM named n JOIN record c ON c.uri = n.uri"
        " WHERE n.kind = ? AND n.target = ? AND n.did = ?",
        (r.POSTGATE, uri, author),
    ).fetchone()
    detached = set(json.loads(gate[0]).get("detachedEmbeddingUris") or []) if gate else set()
    kept = [(q,) for (q,) in page.items if r.uri_did(q) not in blocked and q not in detached]
    return Page(kept, page.cursor)

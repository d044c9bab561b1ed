"""SQL that indexes records: each change of a batch applied in order, counts kept exact (a
delete undoes exactly what its create did; each count's changes are summed over the batch and
written once at its end), new rows written together per statement (`_Buffered`: one
executemany per table between the batch's reads and deletes, not one execute per record),
notifications derived as records arrive, each
repo's sync state (spec-sync.md, "Record-Level Synchronization") checked and kept, and the
firehose cursor saved in the same transaction (appview.changes)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Final

import orjson

from appview import gates
from appview import records as r
from appview.changes import (
    Backfilled,
    Change,
    DeleteRecord,
    PutRecord,
    RepoCommit,
    RepoSync,
    SetHandle,
    SetStatus,
    SkipRecord,
)
from appview.db import gates as db_gates
from runtime.sql import Connection, Cursor

# Which aggregate an edge or named record counts into: (table, key column, count column).
_EDGE_COUNTS: Final = {
    r.LIKE: (("post_agg", "uri", "likes", "subject"),),
    r.REPOST: (("post_agg", "uri", "reposts", "subject"),),
    r.FOLLOW: (
        ("profile_agg", "did", "follows", "did"),
        ("profile_agg", "did", "followers", "subject"),
    ),
}
_NAMED_COUNTS: Final = {
    r.LIST: "lists",
    r.GENERATOR: "feeds",
    r.STARTER_PACK: "starter_packs",
}
_EDGE_NOTIFY: Final = {r.LIKE: "like", r.REPOST: "repost", r.FOLLOW: "follow"}


def apply(
    conn: Connection, changes: Iterable[Change], service: str, cursor: int | None
) -> set[str]:
    """Apply `changes` in order and move `service`'s cursor to `cursor` (None: leave it), in
    the caller's transaction; returns the DIDs whose repos are desynchronized (to backfill)."""
    changes = list(changes)
    batch = _Batch(conn, changes)
    for change in changes:
        batch.apply(change)
    batch.conn.flush()
    batch.counts.save()
    batch.repos.save()
    if cursor is not None:
        conn.execute(
            "INSERT INTO subscription (service, cursor) VALUES (?, ?)"
            " ON CONFLICT (service) DO UPDATE SET cursor = excluded.cursor",
            (service, cursor),
        )
    return batch.desynchronized


def desynchronized(conn: Connection) -> list[str]:
    """The repos waiting for a backfill."""
    rows = conn.execute("SELECT did FROM repo WHERE synchronized = 0 ORDER BY did")
    return [str(did) for (did,) in rows]


def repo_rev(conn: Connection, did: str) -> str | None:
    """The rev a synchronized repo's records are indexed at (None: not synchronized)."""
    row = conn.execute("SELECT rev, synchronized FROM repo WHERE did = ?", (did,)).fetchone()
    return None if row is None or not row[1] else str(row[0])


class _Repos:
    """The sync state (rev, synchronized) of the repos a batch touches, read together at the
    start and written back together at the end of the batch."""

    def __init__(self, conn: Connection, dids: Iterable[str]) -> None:
        self.conn = conn
        self.states: dict[str, tuple[str | None, bool] | None] = dict.fromkeys(dids)
        for chunk in _chunks(list(self.states)):
            marks = ", ".join("?" * len(chunk))
            query = f"SELECT did, rev, synchronized FROM repo WHERE did IN ({marks})"
            for did, rev, synchronized in conn.execute(query, chunk):
                self.states[did] = (rev, bool(synchronized))
        self.changed: set[str] = set()

    def get(self, did: str) -> tuple[str | None, bool] | None:
        if did not in self.states:
            row = self.conn.execute(
                "SELECT rev, synchronized FROM repo WHERE did = ?", (did,)
            ).fetchone()
            self.states[did] = None if row is None else (row[0], bool(row[1]))
        return self.states[did]

    def set(self, did: str, rev: str | None, synchronized: bool) -> None:
        self.states[did] = (rev, synchronized)
        self.changed.add(did)

    def save(self) -> None:
        rows = []
        for did in self.changed:
            state = self.states[did]
            assert state is not None
            rows.append((did, state[0], int(state[1])))
        self.conn.executemany(
            "INSERT INTO repo (did, rev, synchronized) VALUES (?, ?, ?) ON CONFLICT (did)"
            " DO UPDATE SET rev = excluded.rev, synchronized = excluded.synchronized",
            rows,
        )


class _Counts:
    """The batch's changes to the aggregate counts, summed per row and written together at the
    end (one statement per count column, not one per record)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.deltas: dict[tuple[str, str, str], dict[str, int]] = {}

    def bump(self, table: str, key: str, column: str, value: str, by: int) -> None:
        deltas = self.deltas.setdefault((table, key, column), {})
        deltas[value] = deltas.get(value, 0) + by

    def save(self) -> None:
        for (table, key, column), deltas in self.deltas.items():
            self.conn.executemany(
                f"INSERT INTO {table} ({key}, {column}) VALUES (?, ?) ON CONFLICT ({key})"
                f" DO UPDATE SET {column} = {table}.{column} + excluded.{column}",
                sorted(deltas.items()),
            )


class _Buffered:
    """The batch's connection, holding back inserts of new rows: each statement's rows are
    written together (one executemany per statement, not one execute per record) as soon as
    anything else runs on the connection (a read, a delete, an upsert) and at the end of the
    batch, so every statement sees the index as if each insert had run when it was made."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.pending: dict[str, list[tuple[Any, ...]]] = {}

    def insert(self, sql: str, row: tuple[Any, ...]) -> None:
        self.pending.setdefault(sql, []).append(row)

    def flush(self) -> None:
        for sql, rows in self.pending.items():
            self.conn.executemany(sql, rows)
        self.pending.clear()

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Cursor:
        self.flush()
        return self.conn.execute(sql, parameters)

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Any:
        self.flush()
        return self.conn.executemany(sql, parameters)


class _Batch:
    """One transaction's changes, with what it already made sure of. What the changes need
    to know of the index (which of their records are indexed, their repos' states) is read in
    a few statements first, not one per record (on PostgreSQL each is a round trip)."""

    def __init__(self, conn: Connection, changes: list[Change]) -> None:
        self.conn = _Buffered(conn)
        dids = [c.did for c in changes if isinstance(c, RepoCommit | RepoSync | Backfilled)]
        self.repos = _Repos(conn, dids)
        self.indexed: set[str] = set()  # the URIs of the batch's puts that are in the index
        for chunk in _chunks([put.uri for put in _puts(changes)]):
            marks = ", ".join("?" * len(chunk))
            query = f"SELECT uri FROM record WHERE uri IN ({marks})"
            self.indexed.update(uri for (uri,) in conn.execute(query, chunk))
        self.counts = _Counts(conn)
        self.actors: set[str] = set()  # DIDs whose actor row this batch already made sure of
        self.desynchronized: set[str] = set()

    def apply(self, change: Change) -> None:
        conn = self.conn
        if isinstance(change, RepoCommit):
            self.commit(change)
        elif isinstance(change, PutRecord):
            self.put(change)
        elif isinstance(change, DeleteRecord):
            self.delete(change.uri)
        elif isinstance(change, SkipRecord):
            conn.execute(
                "INSERT INTO skipped (collection, count) VALUES (?, 1)"
                " ON CONFLICT (collection) DO UPDATE SET count = skipped.count + 1",
                (change.collection,),
            )
        elif isinstance(change, SetHandle):
            conn.execute(
                "INSERT INTO actor (did, handle, indexed_at) VALUES (?, ?, ?)"
                " ON CONFLICT (did) DO UPDATE SET handle = excluded.handle",
                (change.did, change.handle, change.indexed_at),
            )
        elif isinstance(change, SetStatus):
            conn.execute(
                "INSERT INTO actor (did, status, indexed_at) VALUES (?, ?, ?)"
                " ON CONFLICT (did) DO UPDATE SET status = excluded.status",
                (change.did, change.status, change.indexed_at),
            )
            state = self.repos.get(change.did)
            if change.status is None and state is not None and not state[1]:
                # Active again: a backfill that failed while it was not can succeed now.
                self.desynchronized.add(change.did)
        elif isinstance(change, RepoSync):
            self.sync(change)
        elif isinstance(change, Backfilled):
            self.backfill(change)

    def put(self, put: PutRecord) -> None:
        if put.uri in self.indexed:
            _delete(self.conn, self.counts, put.uri)
        self.indexed.add(put.uri)
        if put.did not in self.actors:
            self.actors.add(put.did)
            self.conn.insert(
                "INSERT INTO actor (did, indexed_at) VALUES (?, ?) ON CONFLICT (did) DO NOTHING",
                (put.did, put.indexed_at),
            )
        _put(self.conn, self.counts, put)

    def delete(self, uri: str) -> None:
        _delete(self.conn, self.counts, uri)
        self.indexed.discard(uri)

    def commit(self, commit: RepoCommit) -> None:
        """spec-sync.md: a commit applies on a synchronized repo when its rev is newer and its
        `since` follows on from the rev indexed; else the repo needs its export."""
        did, state = commit.did, self.repos.get(commit.did)
        if state is None:
            if commit.since is not None:  # the repo existed before we saw it
                self._desynchronize(did, None)
                return
        else:
            rev, synchronized = state
            if not synchronized:
                self.desynchronized.add(did)  # dropped: the backfill's export covers it
                return
            if rev is not None and commit.rev <= rev:
                return  # already indexed (a backfill's export, or a replay)
            if commit.since is not None and rev is not None and commit.since != rev:
                self._desynchronize(did, rev)  # a commit between the two was missed
                return
        for change in commit.changes:
            self.apply(change)
        self.repos.set(did, commit.rev, True)

    def sync(self, sync: RepoSync) -> None:
        state = self.repos.get(sync.did)
        if state is not None and state[1] and state[0] is not None and sync.rev <= state[0]:
            return  # the head we have, or an older one
        self._desynchronize(sync.did, None if state is None else state[0])

    def backfill(self, repo: Backfilled) -> None:
        state = self.repos.get(repo.did)
        if state is not None and state[1] and state[0] is not None and repo.rev <= state[0]:
            return  # the index is already at this rev or newer
        indexed = dict(self.conn.execute("SELECT uri, cid FROM record WHERE did = ?", (repo.did,)))
        for put in repo.records:
            if indexed.pop(put.uri, None) != put.cid:
                self.put(put)
        for uri in indexed:
            self.delete(uri)
        for skip in repo.skipped:
            self.apply(skip)
        self.repos.set(repo.did, repo.rev, True)
        self.desynchronized.discard(repo.did)

    def _desynchronize(self, did: str, rev: str | None) -> None:
        self.repos.set(did, rev, False)
        self.desynchronized.add(did)


def _puts(changes: list[Change]) -> Iterator[PutRecord]:
    for change in changes:
        if isinstance(change, PutRecord):
            yield change
        elif isinstance(change, RepoCommit):
            yield from (c for c in change.changes if isinstance(c, PutRecord))
        elif isinstance(change, Backfilled):
            yield from change.records


def _chunks(values: list[str], size: int = 500) -> Iterator[list[str]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def cursor(conn: Connection, service: str) -> int | None:
    row = conn.execute("SELECT cursor FROM subscription WHERE service = ?", (service,)).fetchone()
    return None if row is None else int(row[0])


def skipped(conn: Connection) -> dict[str, int]:
    return {str(c): int(n) for c, n in conn.execute("SELECT collection, count FROM skipped")}


def _existing(conn: Connection, uri: str) -> str | None:
    row = conn.execute("SELECT collection FROM record WHERE uri = ?", (uri,)).fetchone()
    return None if row is None else str(row[0])


def _notify(
    db: _Buffered,
    put: PutRecord,
    recipient: str,
    reason: str,
    subject: str | None,
    sort_at: str,
) -> None:
    if recipient == put.did:
        return
    db.insert(
        "INSERT INTO notification (did, author, uri, cid, reason, reason_subject, sort_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (recipient, put.did, put.uri, put.cid, reason, subject, sort_at),
    )


def _put(db: _Buffered, counts: _Counts, put: PutRecord) -> None:
    value = put.value
    db.insert(
        "INSERT INTO record (uri, cid, did, collection, json, indexed_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (put.uri, put.cid, put.did, put.collection, _json(value), put.indexed_at),
    )
    created = r.normalize_time(value.get("createdAt"))
    sort_at = r.sort_at(created, put.indexed_at)
    if put.collection == r.POST:
        _put_post(db, counts, put, created or put.indexed_at, sort_at)
    elif put.collection == r.PROFILE:
        db.insert(
            "INSERT INTO profile (did, uri, cid, display_name, description, avatar, banner,"
            " pinned_post, created_at, indexed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                put.did,
                put.uri,
                put.cid,
                value.get("displayName"),
                value.get("description"),
                r.blob_cid(value.get("avatar")),
                r.blob_cid(value.get("banner")),
                r.ref_uri(value.get("pinnedPost")),
                created,
                put.indexed_at,
            ),
        )
    elif put.collection in r.EDGE_SUBJECT:
        subject, subject_cid = r.edge_subject(put.collection, value)
        db.insert(
            "INSERT INTO edge (uri, kind, did, subject, subject_cid, list, created_at, sort_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                put.uri,
                put.collection,
                put.did,
                subject,
                subject_cid,
                value.get("list") if put.collection == r.LIST_ITEM else None,
                created or put.indexed_at,
                sort_at,
            ),
        )
        for table, key, column, side in _EDGE_COUNTS.get(put.collection, ()):
            counts.bump(table, key, column, put.did if side == "did" else subject, 1)
        if put.collection == r.REPOST:
            db.insert(
                "INSERT INTO feed_item (uri, post, did, sort_at) VALUES (?, ?, ?, ?)",
                (put.uri, subject, put.did, sort_at),
            )
        reason = _EDGE_NOTIFY.get(put.collection)
        if reason is not None:
            follow = put.collection == r.FOLLOW
            recipient = subject if follow else r.uri_did(subject)
            _notify(db, put, recipient, reason, None if follow else subject, sort_at)
    elif put.collection in r.NAMED_TARGET:
        db.insert(
            "INSERT INTO named (uri, kind, did, target, sort_at) VALUES (?, ?, ?, ?, ?)",
            (put.uri, put.collection, put.did, r.named_target(put.collection, value), sort_at),
        )
        if put.collection in _NAMED_COUNTS:
            counts.bump("profile_agg", "did", _NAMED_COUNTS[put.collection], put.did, 1)


def _put_post(db: _Buffered, counts: _Counts, put: PutRecord, created: str, sort_at: str) -> None:
    facts = r.post_facts(put.value)
    db.insert(
        "INSERT INTO post (uri, did, cid, created_at, indexed_at, sort_at, reply_root,"
        " reply_parent, quote, media, langs) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            put.uri,
            put.did,
            put.cid,
            created,
            put.indexed_at,
            sort_at,
            facts.reply_root,
            facts.reply_parent,
            facts.quote,
            facts.media,
            facts.langs,
        ),
    )
    db.insert(
        "INSERT INTO feed_item (uri, post, did, sort_at) VALUES (?, ?, ?, ?)",
        (put.uri, put.uri, put.did, sort_at),
    )
    for tag in facts.tags:
        db.insert(
            "INSERT INTO post_tag (uri, tag) VALUES (?, ?) ON CONFLICT DO NOTHING", (put.uri, tag)
        )
    for link in facts.links:
        db.insert(
            "INSERT INTO post_link (uri, target) VALUES (?, ?) ON CONFLICT DO NOTHING",
            (put.uri, link),
        )
    for did in facts.mentions:
        db.insert(
            "INSERT INTO post_mention (did, uri) VALUES (?, ?) ON CONFLICT DO NOTHING",
            (did, put.uri),
        )
    counts.bump("profile_agg", "did", "posts", put.did, 1)
    # As the reference: a reply its thread's gate refuses is not counted and notifies no one
    # upthread; a quote its post's postgate refuses notifies no one.
    refused_reply, refused_quote = gates.violations(db, put.did, facts)
    db_gates.set_violations(db, put.uri, refused_reply, refused_quote)
    if facts.reply_parent is not None and not refused_reply:
        counts.bump("post_agg", "uri", "replies", facts.reply_parent, 1)
    notified = {put.did}
    ancestors: tuple[str | None, ...] = (
        () if refused_reply else (facts.reply_parent, facts.reply_root)
    )
    # Replies to a hidden reply notify its author but no one further up (the reference).
    parent, root = facts.reply_parent, facts.reply_root
    if parent and root and parent != root and gates.hidden_reply(db, root, parent):
        ancestors = (parent,)
    for ancestor in dict.fromkeys(filter(None, ancestors)):
        author = r.uri_did(ancestor)
        if author not in notified:
            notified.add(author)
            _notify(db, put, author, "reply", ancestor, sort_at)
    if facts.quote is not None:
        counts.bump("post_agg", "uri", "quotes", facts.quote, 1)
        author = r.uri_did(facts.quote)
        if author not in notified and not refused_quote:
            notified.add(author)
            _notify(db, put, author, "quote", facts.quote, sort_at)
    for mentioned in facts.mentions:
        if mentioned not in notified:
            notified.add(mentioned)
            _notify(db, put, mentioned, "mention", None, sort_at)


def _delete(conn: Connection, counts: _Counts, uri: str) -> None:
    collection = _existing(conn, uri)
    if collection is None:
        return
    did = r.uri_did(uri)
    conn.execute("DELETE FROM record WHERE uri = ?", (uri,))
    conn.execute("DELETE FROM notification WHERE uri = ?", (uri,))
    if collection == r.POST:
        row = conn.execute("SELECT reply_parent, quote FROM post WHERE uri = ?", (uri,)).fetchone()
        parent, quote = row
        refused_reply = db_gates.delete_violations(conn, uri)
        if parent is not None and not refused_reply:
            counts.bump("post_agg", "uri", "replies", parent, -1)
        if quote is not None:
            counts.bump("post_agg", "uri", "quotes", quote, -1)
        counts.bump("profile_agg", "did", "posts", did, -1)
        for table in ("post", "feed_item", "post_tag", "post_link", "post_mention"):
            conn.execute(f"DELETE FROM {table} WHERE uri = ?", (uri,))
    elif collection == r.PROFILE:
        conn.execute("DELETE FROM profile WHERE did = ?", (did,))
    elif collection in r.EDGE_SUBJECT:
        (subject,) = conn.execute("SELECT subject FROM edge WHERE uri = ?", (uri,)).fetchone()
        for table, key, column, side in _EDGE_COUNTS.get(collection, ()):
            counts.bump(table, key, column, did if side == "did" else subject, -1)
        conn.execute("DELETE FROM edge WHERE uri = ?", (uri,))
        conn.execute("DELETE FROM feed_item WHERE uri = ?", (uri,))
    elif collection in r.NAMED_TARGET:
        conn.execute("DELETE FROM named WHERE uri = ?", (uri,))
        if collection in _NAMED_COUNTS:
            counts.bump("profile_agg", "did", _NAMED_COUNTS[collection], did, -1)


def _json(value: dict[str, Any]) -> str:
    """A record's JSON text: orjson writes the same text as compact `json.dumps(value,
    ensure_ascii=False)` for data-model values (string keys, integers within the 64-bit range
    atcore.cbor admits, no floats), in a quarter of the time."""
    return orjson.dumps(value).decode()

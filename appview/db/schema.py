"""The appview's tables and their versioned migrations, on SQLite or PostgreSQL.

The schema version (`PRAGMA user_version` on SQLite, the `schema_version` table on PostgreSQL:
appview.db.dialect) is the number of migrations applied. Start-up applies the missing ones in
one transaction each; a database written by newer code (more migrations than this code knows)
is refused rather than misread. Timestamps are ISO-8601 UTC strings of one fixed shape
(appview.records.normalize_time), so they order as text; `sort_at` is the earlier of a record's
createdAt and the time it was indexed, as the reference orders feeds.
"""

from __future__ import annotations

import sqlite3
from typing import Final

from appview.db.dialect import Dialect
from runtime.sql import Connection, transaction


class SchemaTooNew(RuntimeError):
    """The database was migrated by a newer version of the appview."""


_V1: Final = """
CREATE TABLE subscription (
    service TEXT PRIMARY KEY,
    cursor INTEGER NOT NULL
);
CREATE TABLE actor (
    did TEXT PRIMARY KEY,
    handle TEXT,
    -- NULL while active; else takendown, suspended, deactivated, deleted, ...
    status TEXT,
    indexed_at TEXT NOT NULL
);
CREATE INDEX actor_handle ON actor (handle);
-- Every indexed record's JSON value, as views return it.
CREATE TABLE record (
    uri TEXT PRIMARY KEY,
    cid TEXT NOT NULL,
    did TEXT NOT NULL,
    collection TEXT NOT NULL,
    json TEXT NOT NULL,
    indexed_at TEXT NOT NULL
);
CREATE INDEX record_did ON record (did, collection);
CREATE TABLE profile (
    did TEXT PRIMARY KEY,
    uri TEXT NOT NULL,
    cid TEXT NOT NULL,
    display_name TEXT,
    description TEXT,
    avatar TEXT,
    banner TEXT,
    pinned_post TEXT,
    created_at TEXT,
    indexed_at TEXT NOT NULL
);
CREATE TABLE profile_agg (
    did TEXT PRIMARY KEY,
    followers INTEGER NOT NULL DEFAULT 0,
    follows INTEGER NOT NULL DEFAULT 0,
    posts INTEGER NOT NULL DEFAULT 0,
    lists INTEGER NOT NULL DEFAULT 0,
    feeds INTEGER NOT NULL DEFAULT 0,
    starter_packs INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE post (
    uri TEXT PRIMARY KEY,
    did TEXT NOT NULL,
    cid TEXT NOT NULL,
    created_at TEXT NOT NULL,
    indexed_at TEXT NOT NULL,
    sort_at TEXT NOT NULL,
    reply_root TEXT,
    reply_parent TEXT,
    quote TEXT,
    -- 1 for images or video (the media filters), 2 for video alone
    media INTEGER NOT NULL DEFAULT 0,
    langs TEXT
);
CREATE INDEX post_author ON post (did, sort_at);
CREATE INDEX post_parent ON post (reply_parent);
CREATE INDEX post_root ON post (reply_root);
CREATE INDEX post_quote ON post (quote);
CREATE TABLE post_agg (
    uri TEXT PRIMARY KEY,
    likes INTEGER NOT NULL DEFAULT 0,
    reposts INTEGER NOT NULL DEFAULT 0,
    replies INTEGER NOT NULL DEFAULT 0,
    quotes INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE post_tag (
    uri TEXT NOT NULL,
    tag TEXT NOT NULL,
    PRIMARY KEY (tag, uri)
) WITHOUT ROWID;
CREATE TABLE post_link (
    uri TEXT NOT NULL,
    target TEXT NOT NULL,
    PRIMARY KEY (uri, target)
) WITHOUT ROWID;
-- A like, repost, follow, block, list item or list block: a record about one subject.
CREATE TABLE edge (
    uri TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    did TEXT NOT NULL,
    subject TEXT NOT NULL,
    subject_cid TEXT,
    -- the list a list item puts its subject on
    list TEXT,
    created_at TEXT NOT NULL,
    sort_at TEXT NOT NULL
);
CREATE INDEX edge_subject ON edge (kind, subject, sort_at);
CREATE INDEX edge_actor ON edge (kind, did, subject);
CREATE INDEX edge_actor_time ON edge (kind, did, sort_at);
CREATE INDEX edge_list ON edge (list, subject);
-- Posts and reposts as they appear in author feeds and timelines.
CREATE TABLE feed_item (
    uri TEXT PRIMARY KEY,
    post TEXT NOT NULL,
    did TEXT NOT NULL,
    sort_at TEXT NOT NULL
);
CREATE INDEX feed_item_author ON feed_item (did, sort_at);
-- Lists, starter packs, feed generators, threadgates, postgates: looked up by uri or owner.
CREATE TABLE named (
    uri TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    did TEXT NOT NULL,
    -- the post a threadgate or postgate governs; the list's purpose; the feed's service DID
    target TEXT,
    sort_at TEXT NOT NULL
);
CREATE INDEX named_owner ON named (kind, did, sort_at);
CREATE INDEX named_target ON named (kind, target);
CREATE TABLE notification (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    did TEXT NOT NULL,
    author TEXT NOT NULL,
    uri TEXT NOT NULL,
    cid TEXT NOT NULL,
    reason TEXT NOT NULL,
    reason_subject TEXT,
    sort_at TEXT NOT NULL
);
CREATE INDEX notification_did ON notification (did, sort_at);
CREATE INDEX notification_uri ON notification (uri);
CREATE TABLE notification_seen (
    did TEXT PRIMARY KEY,
    seen_at TEXT NOT NULL
);
-- Records that failed their lexicon, by collection (they are not indexed).
CREATE TABLE skipped (
    collection TEXT PRIMARY KEY,
    count INTEGER NOT NULL
);
"""

# Gate violations decided when a post is indexed, as the reference decides them: a reply its
# thread's gate did not allow then, a quote of a post whose postgate disabled embedding then.
# Notification preferences (app.bsky.notification.defs#preferences) kept per account.
_V2: Final = """
CREATE TABLE post_violation (
    uri TEXT PRIMARY KEY,
    thread_gate INTEGER NOT NULL,
    embedding INTEGER NOT NULL
);
CREATE TABLE notification_pref (
    did TEXT PRIMARY KEY,
    priority INTEGER NOT NULL DEFAULT 0,
    -- the app.bsky.notification.defs#preferences JSON, NULL for the defaults
    preferences TEXT
);
"""

# Mutes are private: kept here per viewer, never in a repository. Post text is searchable through
# FTS5 on SQLite, kept in step with the record table by triggers (a put is a delete and an
# insert); PostgreSQL has no FTS5 and searches the record text at read time (appview.db.search).
_V3: Final = """
CREATE TABLE mute (
    did TEXT NOT NULL,
    subject TEXT NOT NULL,
    only_reposts INTEGER NOT NULL DEFAULT 0,
    only_quoteposts INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    PRIMARY KEY (did, subject)
);
CREATE INDEX mute_time ON mute (did, created_at);
CREATE TABLE list_mute (
    did TEXT NOT NULL,
    list TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (did, list)
);
CREATE INDEX list_mute_time ON list_mute (did, created_at);
-- sqlite only
CREATE VIRTUAL TABLE post_fts USING fts5(text, tokenize = 'unicode61 remove_diacritics 2');
INSERT INTO post_fts (rowid, text)
    SELECT rowid, coalesce(json_extract(json, '$.text'), '') FROM record
    WHERE collection = 'app.bsky.feed.post';
CREATE TRIGGER post_fts_put AFTER INSERT ON record WHEN new.collection = 'app.bsky.feed.post'
BEGIN
    INSERT INTO post_fts (rowid, text)
    VALUES (new.rowid, coalesce(json_extract(new.json, '$.text'), ''));
END;
CREATE TRIGGER post_fts_delete AFTER DELETE ON record WHEN old.collection = 'app.bsky.feed.post'
BEGIN
    DELETE FROM post_fts WHERE rowid = old.rowid;
END;
-- end sqlite only
-- Whom a post mentions (its mention facets), for searchPosts' `mentions`; appview.db.index
-- keeps it, SQLite fills it from the posts indexed before.
CREATE TABLE post_mention (
    did TEXT NOT NULL,
    uri TEXT NOT NULL,
    PRIMARY KEY (did, uri)
) WITHOUT ROWID;
CREATE INDEX post_mention_uri ON post_mention (uri);
-- sqlite only
INSERT INTO post_mention (did, uri)
    SELECT DISTINCT json_extract(feature.value, '$.did'), record.uri
    FROM record, json_each(record.json, '$.facets') AS facet,
        json_each(facet.value, '$.features') AS feature
    WHERE record.collection = 'app.bsky.feed.post'
    AND json_extract(feature.value, '$."$type"') = 'app.bsky.richtext.facet#mention'
    AND json_extract(feature.value, '$.did') IS NOT NULL;
CREATE VIRTUAL TABLE profile_fts USING fts5(
    display_name, description, tokenize = 'unicode61 remove_diacritics 2'
);
INSERT INTO profile_fts (rowid, display_name, description)
    SELECT rowid, coalesce(display_name, ''), coalesce(description, '') FROM profile;
CREATE TRIGGER profile_fts_put AFTER INSERT ON profile
BEGIN
    INSERT INTO profile_fts (rowid, display_name, description)
    VALUES (new.rowid, coalesce(new.display_name, ''), coalesce(new.description, ''));
END;
CREATE TRIGGER profile_fts_delete AFTER DELETE ON profile
BEGIN
    DELETE FROM profile_fts WHERE rowid = old.rowid;
END;
-- end sqlite only
"""

# Each repo's synchronization state (spec-sync.md, "Record-Level Synchronization"): the rev
# its records are indexed at, and whether they are (synchronized) or need a backfill from the
# repo's export first (desynchronized: its commits are dropped until then).
_V4: Final = """
CREATE TABLE repo (
    did TEXT PRIMARY KEY,
    rev TEXT,
    synchronized INTEGER NOT NULL
);
CREATE INDEX repo_desynchronized ON repo (synchronized, did);
"""

# Post text is searchable on PostgreSQL through a tsvector the database keeps itself (a
# generated column of the record table, GIN-indexed). FOLD (of a text expression) folds it as
# SQLite's FTS5 unicode61 tokenizer does: diacritics dropped, split at every character that is
# not a letter or digit (by the database's default locale, not the columns' byte order), lower
# case ('simple'); appview.db.search folds query terms with it, so searchPosts means the same
# on both stores.
FOLD: Final = (
    'regexp_replace(regexp_replace(normalize({} COLLATE "default", NFD),'
    " '[\\u0300-\\u036f]', '', 'g'), '[^[:alnum:]]+', ' ', 'g')"
)
_V5: Final = f"""
-- postgres only
ALTER TABLE record ADD COLUMN post_text tsvector GENERATED ALWAYS AS (
    CASE WHEN collection = 'app.bsky.feed.post'
    THEN to_tsvector('simple', {FOLD.format("coalesce(CAST(json AS jsonb) ->> 'text', '')")})
    END
) STORED;
CREATE INDEX record_post_text ON record USING GIN (post_text);
-- end postgres only
"""

# Who joined through a starter pack (app.bsky.actor.profile's joinedViaStarterPack), counted
# for a pack's joinedAllTimeCount and joinedWeekCount: an index on the record JSON's field, the
# expression each store writes it with in JOINED_VIA.
JOINED_VIA: Final = {
    "sqlite": "json_extract(json, '$.joinedViaStarterPack.uri')",
    "postgres": "(CAST(json AS jsonb) -> 'joinedViaStarterPack' ->> 'uri')",
}
_V6: Final = f"""
-- sqlite only
CREATE INDEX record_joined_via ON record ({JOINED_VIA["sqlite"]})
    WHERE collection = 'app.bsky.actor.profile';
-- end sqlite only
-- postgres only
CREATE INDEX record_joined_via ON record ({JOINED_VIA["postgres"]})
    WHERE collection = 'app.bsky.actor.profile';
-- end postgres only
"""

# Indexes on columns most rows leave NULL (a post's reply and quote, an edge's list: only
# replies, quotes and list items have them) hold only the rows that have a value: every index
# an insert has to update costs the indexer, and the reads only look these up by a value
# (`col = ?`, `col IN (...)`, joins on it), which a partial index on `col IS NOT NULL` serves.
# No query looks posts up by their thread's root (threads are walked by parent), so that
# index goes.
_V7: Final = """
DROP INDEX post_parent;
CREATE INDEX post_parent ON post (reply_parent) WHERE reply_parent IS NOT NULL;
DROP INDEX post_root;
DROP INDEX post_quote;
CREATE INDEX post_quote ON post (quote) WHERE quote IS NOT NULL;
DROP INDEX edge_list;
CREATE INDEX edge_list ON edge (list, subject) WHERE list IS NOT NULL;
"""

MIGRATIONS: Final = (_V1, _V2, _V3, _V4, _V5, _V6, _V7)


def check_version(conn: Connection, dialect: Dialect) -> int:
    """The schema version; SchemaTooNew when newer code wrote the database."""
    version = dialect.version(conn)
    if version > len(MIGRATIONS):
        raise SchemaTooNew(
            f"the appview database is at schema version {version}, newer than this code's "
            f"{len(MIGRATIONS)}: run a newer skyloft, or start from a fresh data directory "
            "(or PostgreSQL schema)"
        )
    return version


def migrate(conn: Connection, dialect: Dialect) -> None:
    """Bring the schema to the newest version; SchemaTooNew for a newer database."""
    version = check_version(conn, dialect)
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        transaction(conn, _apply, (dialect, script, number))


def _apply(conn: Connection, dialect: Dialect, script: str, number: int) -> None:
    for statement in _statements(dialect.ddl(script)):
        conn.execute(statement)
    dialect.set_version(conn, number)


def _statements(script: str) -> list[str]:
    # executescript would commit on its own; statements run one by one stay in our transaction.
    # A statement ends where SQLite says it is complete (a trigger body holds semicolons).
    statements, current = [], ""
    for line in script.splitlines():
        if line.strip().startswith("--"):
            continue
        current += line + "\n"
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    return [*statements, current.strip()] if current.strip() else statements

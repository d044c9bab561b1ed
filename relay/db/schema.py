"""The relay database schema (hosts, accounts, collections, the event log, bans)."""

from __future__ import annotations

# seq uses AUTOINCREMENT so compaction of the whole window never lets a seq number repeat.
SCHEMA = """
CREATE TABLE IF NOT EXISTS host (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    hostname TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL,
    cursor INTEGER NOT NULL DEFAULT 0,
    trusted INTEGER NOT NULL DEFAULT 0,
    account_limit INTEGER NOT NULL,
    per_second INTEGER,
    per_hour INTEGER,
    per_day INTEGER,
    created_ms INTEGER NOT NULL,
    last_seen_ms INTEGER
);
-- Events of a host above its cursor already processed, while an earlier one was still in flight
-- (relay.hostcursor): a stream resumed from the cursor skips them.
CREATE TABLE IF NOT EXISTS host_done (
    host_id INTEGER NOT NULL REFERENCES host (id),
    seq INTEGER NOT NULL,
    PRIMARY KEY (host_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS account (
    did TEXT PRIMARY KEY,
    host_id INTEGER NOT NULL REFERENCES host (id),
    status TEXT NOT NULL,
    takedown INTEGER NOT NULL DEFAULT 0,
    throttled INTEGER NOT NULL DEFAULT 0,
    rev TEXT,
    data BLOB,
    head BLOB,
    created_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS account_host ON account (host_id);
CREATE TABLE IF NOT EXISTS collection (
    collection TEXT NOT NULL,
    did TEXT NOT NULL,
    PRIMARY KEY (collection, did)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS event (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    did TEXT NOT NULL,
    kind TEXT NOT NULL,
    frame BLOB NOT NULL,
    time_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS event_time ON event (time_ms);
CREATE TABLE IF NOT EXISTS banned_domain (
    domain TEXT PRIMARY KEY,
    created_ms INTEGER NOT NULL
);
-- Hosts a domain ban took from another status: unbanning the domain gives them back.
CREATE TABLE IF NOT EXISTS domain_banned_host (
    domain TEXT NOT NULL,
    host_id INTEGER NOT NULL REFERENCES host (id),
    PRIMARY KEY (domain, host_id)
) WITHOUT ROWID;
"""

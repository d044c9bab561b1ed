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
-- How many accounts each host has, kept by triggers so every path that adds, removes or moves
-- an account keeps it exact: a new account's throttling check reads one row instead of counting
-- the host's accounts (23 ms at a million). Hosts whose accounts predate the table are counted
-- once when it is created (the INSERT OR IGNORE below leaves rows the triggers keep alone).
CREATE TABLE IF NOT EXISTS host_accounts (
    host_id INTEGER PRIMARY KEY REFERENCES host (id),
    accounts INTEGER NOT NULL
);
INSERT OR IGNORE INTO host_accounts (host_id, accounts)
    SELECT host_id, count(*) FROM account GROUP BY host_id;
CREATE TRIGGER IF NOT EXISTS account_counted AFTER INSERT ON account BEGIN
    INSERT INTO host_accounts (host_id, accounts) VALUES (new.host_id, 1)
        ON CONFLICT (host_id) DO UPDATE SET accounts = accounts + 1;
END;
CREATE TRIGGER IF NOT EXISTS account_uncounted AFTER DELETE ON account BEGIN
    UPDATE host_accounts SET accounts = accounts - 1 WHERE host_id = old.host_id;
END;
CREATE TRIGGER IF NOT EXISTS account_moved AFTER UPDATE OF host_id ON account
WHEN new.host_id IS NOT old.host_id BEGIN
    UPDATE host_accounts SET accounts = accounts - 1 WHERE host_id = old.host_id;
    INSERT INTO host_accounts (host_id, accounts) VALUES (new.host_id, 1)
        ON CONFLICT (host_id) DO UPDATE SET accounts = accounts + 1;
END;
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

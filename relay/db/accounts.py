"""SQL for accounts (repo sync state, takedowns) and the collection index (relay.db)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from atcore.cid import CID
from relay.db.hosts import now_ms
from relay.repostate import RepoState

_COLUMNS = "did, host_id, status, takedown, throttled, rev, data, head"


@dataclass(frozen=True)
class AccountRow:
    did: str
    host_id: int
    state: RepoState
    takedown: bool
    throttled: bool  # over its host's account limit: events are dropped (indigo's host-throttled)

    @property
    def public_status(self) -> str:
        """The status reported by getRepoStatus/listRepos; "active" when events flow."""
        if self.takedown:
            return "takendown"
        if self.throttled:
            return "throttled"
        return self.state.status


def _cid(raw: bytes | None) -> CID | None:
    return None if raw is None else CID(raw)


def _row(row: tuple[object, ...] | None) -> AccountRow | None:
    if row is None:
        return None
    did, host_id, status, takedown, throttled, rev, data, head = row
    state = RepoState(str(did), rev, _cid(data), _cid(head), str(status))  # type: ignore[arg-type]
    return AccountRow(str(did), int(host_id), state, bool(takedown), bool(throttled))  # type: ignore[call-overload]


def get(conn: sqlite3.Connection, did: str) -> AccountRow | None:
    return _row(conn.execute(f"SELECT {_COLUMNS} FROM account WHERE did = ?", (did,)).fetchone())


def create(conn: sqlite3.Connection, did: str, host_id: int, throttled: bool) -> AccountRow:
    conn.execute(
        "INSERT INTO account (did, host_id, status, throttled, created_ms) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (did) DO NOTHING",
        (did, host_id, "active", int(throttled), now_ms()),
    )
    row = get(conn, did)
    assert row is not None
    return row


def save_states(conn: sqlite3.Connection, states: Iterable[tuple[int, RepoState]]) -> None:
    """Persist repos' sync states (with their host ids), creating new accounts; keeps admin
    flags."""
    created = now_ms()
    conn.executemany(
        "INSERT INTO account (did, host_id, status, rev, data, head, created_ms) "
        "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (did) DO UPDATE SET host_id = excluded.host_id, "
        "status = excluded.status, rev = excluded.rev, data = excluded.data, head = excluded.head",
        ((state.did, host_id, *_synced(state), created) for host_id, state in states),
    )


def update_states(conn: sqlite3.Connection, states: Sequence[RepoState]) -> bool:
    """Update the sync state of existing accounts, their host unchanged; False when some
    account had no row (the caller then saves those states in full)."""
    updated = conn.executemany(
        "UPDATE account SET status = ?, rev = ?, data = ?, head = ? WHERE did = ?",
        ((*_synced(state), state.did) for state in states),
    ).rowcount
    return updated == len(states)


def _synced(state: RepoState) -> tuple[str, str | None, bytes | None, bytes | None]:
    """A state's status, rev, data and head columns."""
    data = None if state.data is None else bytes(state.data)
    head = None if state.head is None else bytes(state.head)
    return state.status, state.rev, data, head


def set_takedown(conn: sqlite3.Connection, did: str, takedown: bool) -> bool:
    cur = conn.execute("UPDATE account SET takedown = ? WHERE did = ?", (int(takedown), did))
    return cur.rowcount > 0


def page(conn: sqlite3.Connection, after: str, limit: int) -> list[AccountRow]:
    """Accounts with a known head, by DID (listRepos)."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM account WHERE did > ? AND head IS NOT NULL ORDER BY did LIMIT ?",
        (after, limit),
    ).fetchall()
    return [a for a in map(_row, rows) if a is not None]


def count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT count(*) FROM account").fetchone()[0])


def add_collections(conn: sqlite3.Connection, pairs: Iterable[tuple[str, str]]) -> None:
    """Index (collection, did) pairs; pairs already indexed are kept."""
    conn.executemany(
        "INSERT INTO collection (collection, did) VALUES (?, ?) ON CONFLICT DO NOTHING", pairs
    )


def remove_collections(conn: sqlite3.Connection, did: str) -> None:
    """Drop a repo from the index (a full resync then indexes exactly its records)."""
    conn.execute("DELETE FROM collection WHERE did = ?", (did,))


def dids_with_collection(
    conn: sqlite3.Connection, collection: str, after: str, limit: int
) -> list[str]:
    """DIDs of active accounts that have written to `collection` (listReposByCollection)."""
    rows = conn.execute(
        "SELECT c.did FROM collection c JOIN account a ON a.did = c.did "
        "WHERE c.collection = ? AND c.did > ? AND a.takedown = 0 AND a.throttled = 0 "
        "AND a.status = 'active' ORDER BY c.did LIMIT ?",
        (collection, after, limit),
    ).fetchall()
    return [str(row[0]) for row in rows]


def create_for_host(conn: sqlite3.Connection, did: str, host_id: int, limit: int) -> AccountRow:
    """A new account first seen on a host; over the host's account limit it is throttled."""
    existing = get(conn, did)
    if existing is not None:
        return existing
    return create(conn, did, host_id, throttled=hosted(conn, host_id) >= limit)


def hosted(conn: sqlite3.Connection, host_id: int) -> int:
    """How many accounts a host has (schema.py's host_accounts, kept by triggers)."""
    row = conn.execute(
        "SELECT accounts FROM host_accounts WHERE host_id = ?", (host_id,)
    ).fetchone()
    return 0 if row is None else int(row[0])


def unthrottle_host(conn: sqlite3.Connection, host_id: int, limit: int) -> int:
    """After a host's limit is raised, let its oldest throttled accounts in up to the limit."""
    active = conn.execute(
        "SELECT count(*) FROM account WHERE host_id = ? AND throttled = 0", (host_id,)
    ).fetchone()
    room = max(limit - int(active[0]), 0)
    return conn.execute(
        "UPDATE account SET throttled = 0 WHERE did IN (SELECT did FROM account "
        "WHERE host_id = ? AND throttled = 1 ORDER BY created_ms, did LIMIT ?)",
        (host_id, room),
    ).rowcount

"""SQL for upstream hosts and banned domains (relay.db); each function runs in one transaction."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Mapping
from dataclasses import dataclass

_COLUMNS = (
    "id, hostname, status, cursor, trusted, account_limit, per_second, per_hour, per_day, "
    "created_ms, last_seen_ms, "
    "coalesce((SELECT accounts FROM host_accounts WHERE host_id = host.id), 0)"
)


@dataclass(frozen=True)
class HostRow:
    id: int
    hostname: str
    status: str
    cursor: int
    trusted: bool
    account_limit: int
    per_second: int | None
    per_hour: int | None
    per_day: int | None
    created_ms: int
    last_seen_ms: int | None
    account_count: int


def _row(row: tuple[object, ...] | None) -> HostRow | None:
    if row is None:
        return None
    values = list(row)
    values[4] = bool(values[4])
    return HostRow(*values)  # type: ignore[arg-type]


def now_ms() -> int:
    return int(time.time() * 1000)


def get(conn: sqlite3.Connection, hostname: str) -> HostRow | None:
    return _row(
        conn.execute(f"SELECT {_COLUMNS} FROM host WHERE hostname = ?", (hostname,)).fetchone()
    )


def get_by_id(conn: sqlite3.Connection, host_id: int) -> HostRow | None:
    return _row(conn.execute(f"SELECT {_COLUMNS} FROM host WHERE id = ?", (host_id,)).fetchone())


def create(
    conn: sqlite3.Connection, hostname: str, status: str, trusted: bool, account_limit: int
) -> HostRow:
    conn.execute(
        "INSERT INTO host (hostname, status, trusted, account_limit, created_ms) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (hostname) DO NOTHING",
        (hostname, status, int(trusted), account_limit, now_ms()),
    )
    row = get(conn, hostname)
    assert row is not None
    return row


def page(conn: sqlite3.Connection, after_id: int, limit: int) -> list[HostRow]:
    """Hosts in the order they were first seen (the lexicon's recommended order)."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM host WHERE id > ? ORDER BY id LIMIT ?", (after_id, limit)
    ).fetchall()
    return [h for h in map(_row, rows) if h is not None]


def with_status(conn: sqlite3.Connection, statuses: tuple[str, ...]) -> list[HostRow]:
    marks = ",".join("?" * len(statuses))
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM host WHERE status IN ({marks}) ORDER BY id", statuses
    ).fetchall()
    return [h for h in map(_row, rows) if h is not None]


def set_status(conn: sqlite3.Connection, host_id: int, status: str) -> None:
    conn.execute("UPDATE host SET status = ? WHERE id = ?", (status, host_id))


def position(conn: sqlite3.Connection, host_id: int) -> tuple[int, list[int]]:
    """The host's cursor and the seqs above it already processed (relay.hostcursor)."""
    row = conn.execute("SELECT cursor FROM host WHERE id = ?", (host_id,)).fetchone()
    cursor = 0 if row is None else int(row[0])
    done = conn.execute(
        "SELECT seq FROM host_done WHERE host_id = ? AND seq > ? ORDER BY seq", (host_id, cursor)
    ).fetchall()
    return cursor, [int(seq) for (seq,) in done]


def set_positions(conn: sqlite3.Connection, positions: Mapping[int, tuple[int, list[int]]]) -> None:
    """Move hosts' positions: host id -> (cursor, seqs above it now processed); the done seqs
    the cursor passes are forgotten."""
    seen = now_ms()
    conn.executemany(
        "UPDATE host SET cursor = ?, last_seen_ms = ? WHERE id = ?",
        ((cursor, seen, host_id) for host_id, (cursor, _) in positions.items()),
    )
    conn.executemany(
        "DELETE FROM host_done WHERE host_id = ? AND seq <= ?",
        ((host_id, cursor) for host_id, (cursor, _) in positions.items()),
    )
    conn.executemany(
        "INSERT OR IGNORE INTO host_done (host_id, seq) VALUES (?, ?)",
        ((host_id, seq) for host_id, (_, done) in positions.items() for seq in done),
    )


def reset_cursor(conn: sqlite3.Connection, host_id: int) -> None:
    """Forget the position (the host said our cursor is in its future: its log was reset)."""
    conn.execute("UPDATE host SET cursor = 0 WHERE id = ?", (host_id,))
    conn.execute("DELETE FROM host_done WHERE host_id = ?", (host_id,))


def set_limits(
    conn: sqlite3.Connection,
    host_id: int,
    account_limit: int,
    per_second: int | None,
    per_hour: int | None,
    per_day: int | None,
) -> None:
    conn.execute(
        "UPDATE host SET account_limit = ?, per_second = ?, per_hour = ?, per_day = ? WHERE id = ?",
        (account_limit, per_second, per_hour, per_day, host_id),
    )


def created_since(conn: sqlite3.Connection, since_ms: int) -> int:
    row = conn.execute("SELECT count(*) FROM host WHERE created_ms >= ?", (since_ms,)).fetchone()
    return int(row[0])


def ban_host(conn: sqlite3.Connection, host_id: int) -> None:
    """Ban one host on its own: no domain unban gives it back."""
    set_status(conn, host_id, "banned")
    conn.execute("DELETE FROM domain_banned_host WHERE host_id = ?", (host_id,))


def unban_host(conn: sqlite3.Connection, host_id: int) -> None:
    """Let a banned host be crawled again (on its next requestCrawl)."""
    conn.execute("UPDATE host SET status = 'idle' WHERE id = ? AND status = 'banned'", (host_id,))
    conn.execute("DELETE FROM domain_banned_host WHERE host_id = ?", (host_id,))


def ban_domain(conn: sqlite3.Connection, domain: str) -> list[str]:
    """Ban a domain and every known host under it (remembering which were not banned);
    returns those hosts' names."""
    conn.execute(
        "INSERT INTO banned_domain (domain, created_ms) VALUES (?, ?) "
        "ON CONFLICT (domain) DO NOTHING",
        (domain, now_ms()),
    )
    under, params = _under(domain)
    conn.execute(
        "INSERT INTO domain_banned_host (domain, host_id) "
        f"SELECT ?, id FROM host WHERE status != 'banned' AND ({under}) ON CONFLICT DO NOTHING",
        (domain, *params),
    )
    rows = conn.execute(
        f"UPDATE host SET status = 'banned' WHERE {under} RETURNING hostname", params
    )
    return [str(row[0]) for row in rows.fetchall()]


def unban_domain(conn: sqlite3.Connection, domain: str) -> bool:
    """Lift a domain ban; the hosts it banned become idle again (crawled on their next
    requestCrawl), unless another banned domain still covers them. False if not banned."""
    if not conn.execute("DELETE FROM banned_domain WHERE domain = ?", (domain,)).rowcount:
        return False
    rows = conn.execute(
        "SELECT h.id, h.hostname FROM domain_banned_host d JOIN host h ON h.id = d.host_id "
        "WHERE d.domain = ?",
        (domain,),
    ).fetchall()
    conn.execute("DELETE FROM domain_banned_host WHERE domain = ?", (domain,))
    others = banned_domains(conn)
    for host_id, hostname in rows:
        still = next((d for d in others if is_under(str(hostname), d)), None)
        if still is None:
            conn.execute("UPDATE host SET status = 'idle' WHERE id = ?", (host_id,))
        else:
            conn.execute(
                "INSERT INTO domain_banned_host (domain, host_id) VALUES (?, ?) "
                "ON CONFLICT DO NOTHING",
                (still, host_id),
            )
    return True


def is_under(hostname: str, domain: str) -> bool:
    """True when `hostname` (`host[:port]`) is `domain` or one of its subdomains."""
    name = hostname.rsplit(":", 1)[0]
    return name == domain or name.endswith("." + domain)


def _under(domain: str) -> tuple[str, tuple[str, ...]]:
    """is_under as SQL over host.hostname: a WHERE clause and its parameters."""
    escaped = domain.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    clause = " OR ".join(["hostname = ?", *["hostname LIKE ? ESCAPE '\\'"] * 3])
    return clause, (domain, "%." + escaped, escaped + ":%", "%." + escaped + ":%")


def banned_domains(conn: sqlite3.Connection) -> list[str]:
    rows = conn.execute("SELECT domain FROM banned_domain ORDER BY domain").fetchall()
    return [str(row[0]) for row in rows]

"""SQL for per-account notification settings (appview.notification_prefs): the `priority`
flag putPreferences sets and the #preferences putPreferencesV2 stores."""

from __future__ import annotations

import json
from typing import Any

from runtime.sql import Connection


def load(conn: Connection, did: str) -> tuple[bool, dict[str, Any]]:
    """(priority, stored preferences) of `did`, (False, {}) when it never set any."""
    row = conn.execute(
        "SELECT priority, preferences FROM notification_pref WHERE did = ?", (did,)
    ).fetchone()
    if row is None:
        return False, {}
    return bool(row[0]), json.loads(row[1]) if row[1] else {}


def save_priority(conn: Connection, did: str, priority: bool) -> None:
    conn.execute(
        "INSERT INTO notification_pref (did, priority) VALUES (?, ?)"
        " ON CONFLICT (did) DO UPDATE SET priority = excluded.priority",
        (did, int(priority)),
    )


def save_preferences(conn: Connection, did: str, preferences: dict[str, Any]) -> None:
    text = json.dumps(preferences, separators=(",", ":"))
    conn.execute(
        "INSERT INTO notification_pref (did, preferences) VALUES (?, ?)"
        " ON CONFLICT (did) DO UPDATE SET preferences = excluded.preferences",
        (did, text),
    )

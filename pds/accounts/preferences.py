"""Private account preferences kept on the PDS (lexicon app.bsky.actor.getPreferences /
putPreferences): an ordered list of JSON objects, each typed by its `$type`."""

from __future__ import annotations

import json
import sqlite3
from typing import Any, Final

from runtime.sqlite import SqliteDatabase

PREFERENCE_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS account_pref (
    did TEXT NOT NULL,
    position INTEGER NOT NULL,
    name TEXT NOT NULL,
    value_json TEXT NOT NULL,
    PRIMARY KEY (did, position)
);
"""


class PreferenceStore:
    """Rows of `account_pref`, in the order the client put them."""

    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def get(self, did: str, namespace: str) -> list[dict[str, Any]]:
        """The account's preferences whose `$type` lies in `namespace` (e.g. "app.bsky")."""
        rows = await self._db.read(
            lambda conn: conn.execute(
                "SELECT name, value_json FROM account_pref WHERE did = ? ORDER BY position",
                (did,),
            ).fetchall()
        )
        return [json.loads(value) for name, value in rows if _in_namespace(name, namespace)]

    async def put(self, did: str, namespace: str, prefs: list[dict[str, Any]]) -> None:
        """Replace every preference in `namespace` with `prefs`, keeping the others."""

        def replace(conn: sqlite3.Connection) -> None:
            kept = [
                (name, value)
                for name, value in conn.execute(
                    "SELECT name, value_json FROM account_pref WHERE did = ? ORDER BY position",
                    (did,),
                )
                if not _in_namespace(name, namespace)
            ]
            conn.execute("DELETE FROM account_pref WHERE did = ?", (did,))
            rows = kept + [(pref["$type"], json.dumps(pref)) for pref in prefs]
            conn.executemany(
                "INSERT INTO account_pref VALUES (?, ?, ?, ?)",
                [(did, i, name, value) for i, (name, value) in enumerate(rows)],
            )

        await self._db.write(replace)


def _in_namespace(name: str, namespace: str) -> bool:
    return name == namespace or name.startswith(namespace + ".")

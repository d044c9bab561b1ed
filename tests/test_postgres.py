"""runtime.postgres: sqlite3's calling convention over psycopg (placeholders, literal `%`,
quoted `?`), a failed call leaves nothing behind and the connection usable, reads cannot
write, and the schema keeps one database's users apart."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from runtime.postgres import PostgresDatabase, to_pyformat
from runtime.sql import Connection

URL = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        ("SELECT ? , ?", "SELECT %s , %s"),
        ("WHERE a LIKE 'x/%' || ?", "WHERE a LIKE 'x/%%' || %s"),
        ("SELECT '?', \"a?\", ?", "SELECT '?', \"a?\", %s"),
        ("SELECT 'it''s ?', ?", "SELECT 'it''s ?', %s"),
    ],
)
def test_placeholders(statement: str, expected: str) -> None:
    assert to_pyformat(statement) == expected


@pytest.fixture
def schema() -> Iterator[str]:
    try:
        admin = psycopg.connect(URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL at {URL} (scripts/test-services starts one): {exc}")
    name = f"test_{uuid.uuid4().hex}"
    yield name
    admin.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))
    admin.close()


def _create(conn: Connection) -> None:
    conn.execute("CREATE TABLE t (k TEXT PRIMARY KEY, n BIGINT NOT NULL DEFAULT 0)")


def _insert(conn: Connection, *keys: str) -> None:
    conn.executemany("INSERT INTO t (k) VALUES (?)", [(k,) for k in keys])


def _fail_after(conn: Connection, key: str) -> None:
    _insert(conn, key)
    raise LookupError("the caller's own error")


def _rows(conn: Connection) -> list[Any]:
    return conn.execute("SELECT k FROM t WHERE k LIKE '%' ORDER BY k").fetchall()


async def test_failed_calls_roll_back_and_the_connection_stays_usable(schema: str) -> None:
    db = PostgresDatabase(URL, schema, _create, "test")
    await db.open()
    try:
        with pytest.raises(psycopg.errors.UniqueViolation):
            await db.write(_insert, "a", "a")
        with pytest.raises(LookupError):
            await db.write(_fail_after, "b")
        await db.write(_insert, "c")
        assert await db.read(_rows) == [("c",)]
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            await db.read(_insert, "d")
        assert await db.read(_rows) == [("c",)]
    finally:
        await db.close()
    other = PostgresDatabase(URL, f"{schema}_x", _create, "test")
    await other.open()
    try:
        assert await other.read(_rows) == []
    finally:
        await other.close()
        admin = psycopg.connect(URL, autocommit=True)
        admin.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(f"{schema}_x")))
        admin.close()

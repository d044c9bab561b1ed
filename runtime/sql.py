"""What a service's SQL sees of its database, SQLite or PostgreSQL: a connection with sqlite3's
calling convention (`execute(sql, params)` with `?` placeholders, rows as tuples), and the one
transaction each call handed to a database thread runs in."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class Cursor(Protocol):
    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    """sqlite3.Connection, or runtime.postgres.PgConnection over psycopg."""

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Cursor: ...

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Any: ...


def transaction(
    conn: Connection, fn: Callable[..., T], args: tuple[Any, ...], begin: str = "BEGIN"
) -> T:
    """`fn(conn, *args)` between `begin` and COMMIT, rolled back if it raises."""
    conn.execute(begin)
    try:
        result = fn(conn, *args)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return result

"""appview.db: how the embedded store's connections are set up, and the index writer's batches
(appview.db.index.apply) on both stores."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from appview import records as r
from appview.changes import Change, DeleteRecord, PutRecord, RepoCommit
from appview.config import AppviewConfig
from appview.db import WAL_CHECKPOINT_PAGES, WRITE_CACHE_KIB, Database, index, open_database
from runtime.sql import Connection

ALICE, BOB = "did:plc:alice", "did:plc:bob"
AT = "2024-05-01T00:00:00.000Z"
# The tables the writer keeps, each read whole in a fixed order.
TABLES = {
    "record": "SELECT uri, cid, json FROM record ORDER BY uri",
    "post": "SELECT * FROM post ORDER BY uri",
    "feed_item": "SELECT * FROM feed_item ORDER BY uri",
    "edge": "SELECT * FROM edge ORDER BY uri",
    "post_agg": "SELECT * FROM post_agg ORDER BY uri",
    "profile_agg": "SELECT * FROM profile_agg ORDER BY did",
    "notification": "SELECT did, author, uri, reason, reason_subject FROM notification ORDER BY id",
    "post_tag": "SELECT * FROM post_tag ORDER BY uri, tag",
    "actor": "SELECT * FROM actor ORDER BY did",
    "repo": "SELECT * FROM repo ORDER BY did",
}


def _mmap_size(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA mmap_size").fetchone()[0])


def _writer_pragmas(conn: sqlite3.Connection) -> tuple[int, int]:
    cache = int(conn.execute("PRAGMA cache_size").fetchone()[0])
    return cache, int(conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0])


async def test_the_read_api_maps_the_sqlite_file(tmp_path: Path) -> None:
    db = open_database(AppviewConfig.load({}, data_dir=str(tmp_path)))
    await db.open()
    try:
        assert await db.read(_mmap_size) > 0
        assert await db.write(_writer_pragmas) == (-WRITE_CACHE_KIB, WAL_CHECKPOINT_PAGES)
    finally:
        await db.close()


def _put(did: str, rkey: str, collection: str, cid: str, **value: Any) -> PutRecord:
    uri = f"at://{did}/{collection}/{rkey}"
    return PutRecord(uri, did, collection, cid, {"$type": collection, **value}, AT)


def _delete(did: str, rkey: str, collection: str) -> DeleteRecord:
    return DeleteRecord(f"at://{did}/{collection}/{rkey}", did, collection)


def _session() -> list[Change]:
    """Commits of two repos in which records are created, updated, deleted and created again,
    liked, followed, replied to and tagged, several times over within the same few commits."""
    hello = _put(ALICE, "3kaaaaaaaaaa2", r.POST, "bafyhello", text="hello", createdAt=AT)
    other = _put(ALICE, "3kaaaaaaaaaa3", r.POST, "bafyother", text="other", createdAt=AT)
    strong = {"uri": hello.uri, "cid": hello.cid}
    like = _put(BOB, "3kaaaaaaaaaa2", r.LIKE, "bafylike", subject=strong, createdAt=AT)
    follow = _put(BOB, "3kaaaaaaaaaa3", r.FOLLOW, "bafyfollow", subject=ALICE, createdAt=AT)
    reply = _put(
        BOB,
        "3kaaaaaaaaaa4",
        r.POST,
        "bafyreply",
        text="a reply",
        reply={"root": strong, "parent": strong},
        tags=["one"],
        createdAt=AT,
    )
    again = _put(BOB, "3kaaaaaaaaaa2", r.LIKE, "bafylike2", subject=strong, createdAt=AT)
    retold = _put(ALICE, "3kaaaaaaaaaa3", r.POST, "bafyretold", text="retold", createdAt=AT)
    return [
        RepoCommit(ALICE, "3kaaaaaaaaab1", None, [hello, other]),
        RepoCommit(BOB, "3kaaaaaaaaab1", None, [like, follow, reply]),
        RepoCommit(
            BOB,
            "3kaaaaaaaaab2",
            "3kaaaaaaaaab1",
            [again, _delete(BOB, "3kaaaaaaaaaa3", r.FOLLOW), _delete(BOB, "3kaaaaaaaaaa4", r.POST)],
        ),
        RepoCommit(
            ALICE,
            "3kaaaaaaaaab2",
            "3kaaaaaaaaab1",
            [_delete(ALICE, "3kaaaaaaaaaa3", r.POST), retold],
        ),
        RepoCommit(BOB, "3kaaaaaaaaab3", "3kaaaaaaaaab2", [follow, reply]),
    ]


def _tables(conn: Connection) -> dict[str, list[tuple[Any, ...]]]:
    return {name: [tuple(row) for row in conn.execute(query)] for name, query in TABLES.items()}


async def _indexed(data: Path, batches: list[list[Change]]) -> dict[str, Any]:
    """The tables after indexing `batches` into a new store (its own PostgreSQL schema)."""
    env = dict(os.environ)
    if "BSKY_DB_POSTGRES_SCHEMA" in env:
        env["BSKY_DB_POSTGRES_SCHEMA"] += f"_{data.name}"
    db: Database = open_database(AppviewConfig.load(env, data_dir=str(data)))
    await db.open()
    try:
        for seq, batch in enumerate(batches, start=1):
            await db.write(index.apply, batch, "repos", seq)
        return await db.read(_tables)
    finally:
        await db.close()
        if "BSKY_DB_POSTGRES_SCHEMA" in env:
            with psycopg.connect(env["BSKY_DB_POSTGRES_URL"], autocommit=True) as admin:
                schema = sql.Identifier(env["BSKY_DB_POSTGRES_SCHEMA"])
                admin.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(schema))


async def test_one_batch_indexes_as_its_changes_one_by_one(tmp_path: Path, store: str) -> None:
    """The writer holds a batch's inserts back and writes them together: the index must end
    exactly as if every change had been written on its own, counts included."""
    session = _session()
    together = await _indexed(tmp_path / "together", [session])
    apart = await _indexed(tmp_path / "apart", [[change] for change in session])
    assert together == apart
    hello = f"at://{ALICE}/{r.POST}/3kaaaaaaaaaa2"
    assert together["post_agg"] == [(hello, 1, 0, 1, 0)]
    assert [row[:4] for row in together["profile_agg"]] == [(ALICE, 1, 0, 2), (BOB, 0, 1, 1)]
    reasons = [(row[1], row[3]) for row in together["notification"]]
    assert reasons == [(BOB, "like"), (BOB, "follow"), (BOB, "reply")]
    assert [row[2] for row in together["record"] if row[0].endswith("3kaaaaaaaaaa3")] == [
        f'{{"$type":"{r.POST}","text":"retold","createdAt":"{AT}"}}',
        f'{{"$type":"{r.FOLLOW}","subject":"{ALICE}","createdAt":"{AT}"}}',
    ]

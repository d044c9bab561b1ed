"""A synthetic app.bsky network for bench/appview_reads.py, written through the indexer's own
storage code (appview.db.index.apply, in batched transactions, as ingest applies a firehose;
on SQLite the secondary indexes are made once at the end, see _Writer) and cached so later
runs reuse it.

Shape (at scale 1): 100,000 accounts with profiles and handles, 1,000,000 follows, 1,000,000
posts (30% replies to a recent post, the thread's root kept), 5,000,000 likes. Authors, followed
accounts and liked posts are skewed (a few are popular, most are not); the first `VIEWERS`
accounts are real did:plc identities (their signed genesis operations and keys are kept in
viewers.json, registered at a PLC per run) that each follow `VIEWER_FOLLOWS` accounts, so
their timelines merge many authors, as a real reader's does. Everything is derived from one
seed; record times spread over the 30 days before EPOCH_END.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from appview.changes import Change, PutRecord, SetHandle
from appview.db import index
from appview.db.dialect import POSTGRES, SQLITE
from appview.db.schema import migrate
from atcore import cbor
from atcore.cid import cid_for_cbor
from atcore.identity.plc import did_for_genesis, genesis_op, sign_operation
from atcore.keys import generate_k256
from atcore.syntax.tid import tid_from_timestamp
from runtime import postgres
from runtime.sql import Connection, transaction
from runtime.sqlite import connect

VIEWERS = 32
VIEWER_FOLLOWS = 400
EPOCH_END = 1_780_000_000  # seconds; records are dated in the 30 days before
SPAN = 30 * 86_400
BATCH = 5_000
WORDS = (
    "the a an sky loft network post like follow python data repo tree key event stream feed "
    "morning coffee rain music city train book garden photo walk friend weekend news idea"
).split()
SERVICE = "bench"


@dataclass(frozen=True)
class Shape:
    accounts: int
    posts: int
    likes: int
    follows: int

    @classmethod
    def at(cls, scale: float) -> Shape:
        return cls(
            int(100_000 * scale),
            int(1_000_000 * scale),
            int(5_000_000 * scale),
            int(1_000_000 * scale),
        )

    @property
    def key(self) -> str:
        return f"v1-a{self.accounts}-p{self.posts}-l{self.likes}-f{self.follows}"

    @property
    def records(self) -> int:
        return self.accounts + self.posts + self.likes + self.follows


@dataclass(frozen=True)
class Network:
    folder: Path
    shape: Shape
    viewers: list[dict[str, Any]]  # did, key (k256 hex), op (signed genesis)
    build_seconds: float | None  # None when the cached network was reused
    postgres: str | None = None  # the server's URL when the network is in PostgreSQL

    @property
    def schema(self) -> str:
        """The PostgreSQL schema of a network built there."""
        return "bench_" + self.shape.key.replace("-", "_")

    @property
    def db_path(self) -> Path:
        return self.folder / "data" / "appview.sqlite"

    def meta(self) -> dict[str, Any]:
        meta: dict[str, Any] = json.loads((self.folder / "network.json").read_text())
        return meta


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _did(i: int) -> str:
    digest = hashlib.sha256(f"bench-account-{i}".encode()).digest()
    alphabet = "abcdefghijklmnopqrstuvwxyz234567"
    return "did:plc:" + "".join(alphabet[b % 32] for b in digest[:24])


def _skewed(rng: random.Random, n: int, power: float) -> int:
    """An account index, some far likelier than others (popular accounts); the viewers are
    among the least likely, readers rather than celebrities."""
    return (VIEWERS + min(n - 1, int(n * rng.random() ** power))) % n


def _viewers() -> list[dict[str, Any]]:
    out = []
    for i in range(VIEWERS):
        key, rotation = generate_k256(), generate_k256()
        op = sign_operation(
            genesis_op(
                signing_key=key.public_key().did_key(),
                rotation_keys=[rotation.public_key().did_key()],
                handle=f"viewer{i}.bench.test",
                pds="http://127.0.0.1:1",
            ),
            rotation,
        )
        out.append({"did": did_for_genesis(op), "key": key.hex(), "op": op})
    return out


class _Writer:
    """Changes in indexer batches: one transaction of index.apply per BATCH records, into
    SQLite at `path` or, with `pg` (URL, schema), into a fresh PostgreSQL schema."""

    def __init__(self, path: Path, pg: tuple[str, str] | None) -> None:
        self.conn: Connection
        self.deferred: list[tuple[str, str]] = []  # (name, CREATE statement) built at close
        if pg is None:
            lite = connect(path)
            migrate(lite, SQLITE)
            # A bulk load into a file nobody reads until it is done: no journal to write every
            # page to twice, no fsync. The secondary indexes are dropped here and built once at
            # the end (a sort each): kept up per record, each like, follow and post inserts into
            # about ten B-trees keyed by random DIDs and URIs, whose pages stop fitting any cache
            # a few million records in, and the build slowed to ~1k records/s. What the indexer
            # reads while it writes this network it finds by primary key (records, gates by URI).
            lite.execute("PRAGMA journal_mode = OFF")
            lite.execute("PRAGMA synchronous = OFF")
            lite.execute("PRAGMA cache_size = -1000000")
            self.deferred = lite.execute(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
            ).fetchall()
            for name, _ in self.deferred:
                lite.execute(f"DROP INDEX {name}")
            self.conn, self.close_conn = lite, lite.close
        else:
            with psycopg.connect(pg[0], autocommit=True) as admin:
                admin.execute(f'DROP SCHEMA IF EXISTS "{pg[1]}" CASCADE')
            server = postgres.connect(*pg)
            migrate(server, POSTGRES)
            self.conn, self.close_conn = server, server.close
        self.sqlite = pg is None
        self.pending: list[Change] = []
        self.seq = 0

    def put(self, did: str, collection: str, rkey: str, value: dict[str, Any], at: str) -> str:
        uri = f"at://{did}/{collection}/{rkey}"
        # The synthetic records hold no links or bytes: their JSON is their data model.
        cid = cid_for_cbor(cbor.encode(value)).encode()
        self.pending.append(PutRecord(uri, did, collection, cid, value, at))
        if len(self.pending) >= BATCH:
            self.flush()
        return cid

    def add(self, change: Change) -> None:
        self.pending.append(change)

    def flush(self) -> None:
        self.seq += 1
        transaction(self.conn, index.apply, (self.pending, SERVICE, self.seq))
        self.pending = []

    def close(self) -> None:
        self.flush()
        for _, create in self.deferred:
            self.conn.execute(create)
        self.conn.execute("ANALYZE")
        if self.sqlite:
            self.conn.execute("PRAGMA journal_mode = WAL")
        self.close_conn()


def _times(rng: random.Random, n: int) -> Iterator[float]:
    """n ascending times over the span, with some jitter."""
    step = SPAN / max(n, 1)
    start = EPOCH_END - SPAN
    for i in range(n):
        yield start + i * step + rng.random() * step


def _rkey(seconds: float, n: int) -> str:
    return tid_from_timestamp(int(seconds * 1_000_000), n % 1024)


def build(folder: Path, shape: Shape, pg: tuple[str, str] | None, progress: bool = True) -> None:
    """Write the network into `folder` (replacing what is there), its index into SQLite there
    or into PostgreSQL (`pg`: URL and schema)."""
    if folder.exists():
        shutil.rmtree(folder)
    (folder / "data").mkdir(parents=True)
    rng = random.Random(1)
    viewers = _viewers()
    dids = [v["did"] for v in viewers] + [_did(i) for i in range(VIEWERS, shape.accounts)]
    writer = _Writer(folder / "data" / "appview.sqlite", pg)
    started, done = time.perf_counter(), 0

    def tick(count: int) -> None:
        nonlocal done
        before, done = done, done + count
        if progress and before * 20 // shape.records != done * 20 // shape.records:
            rate = done / (time.perf_counter() - started)
            print(f"  built {done:,} of {shape.records:,} records ({rate:,.0f}/s)", flush=True)

    start = _iso(EPOCH_END - SPAN - 86_400)
    for i, did in enumerate(dids):
        writer.add(
            SetHandle(did, f"u{i}.bench.test" if i >= VIEWERS else f"viewer{i}.bench.test", start)
        )
        profile = {
            "$type": "app.bsky.actor.profile",
            "displayName": f"Account {i}",
            "description": " ".join(rng.choice(WORDS) for _ in range(12)),
            "createdAt": start,
        }
        writer.put(did, "app.bsky.actor.profile", "self", profile, start)
        tick(1)
    # Follows: each viewer follows VIEWER_FOLLOWS accounts, the rest spread over everyone.
    others = shape.follows - VIEWERS * VIEWER_FOLLOWS
    followers = [i for i in range(VIEWERS) for _ in range(VIEWER_FOLLOWS)]
    followers += [rng.randrange(shape.accounts) for _ in range(others)]
    for n, (follower, at) in enumerate(zip(followers, _times(rng, len(followers)), strict=True)):
        target = _skewed(rng, shape.accounts, 2.5)
        if target == follower:
            target = (target + 1) % shape.accounts
        follow = {"$type": "app.bsky.graph.follow", "subject": dids[target], "createdAt": _iso(at)}
        writer.put(dids[follower], "app.bsky.graph.follow", _rkey(at, n), follow, _iso(at))
        tick(1)
    posts: list[tuple[str, str, str, str]] = []  # uri, cid, root uri, root cid
    for n, at in enumerate(_times(rng, shape.posts)):
        author = dids[_skewed(rng, shape.accounts, 2.0)]
        text = " ".join(rng.choice(WORDS) for _ in range(rng.choice((4, 9, 16, 30))))
        value: dict[str, Any] = {
            "$type": "app.bsky.feed.post",
            "text": text,
            "createdAt": _iso(at),
            "langs": ["en"],
        }
        if posts and rng.random() < 0.3:
            parent = posts[max(0, len(posts) - 1 - int(5_000 * rng.random() ** 2))]
            value["reply"] = {
                "root": {"uri": parent[2], "cid": parent[3]},
                "parent": {"uri": parent[0], "cid": parent[1]},
            }
        rkey = _rkey(at, n)
        uri = f"at://{author}/app.bsky.feed.post/{rkey}"
        cid = writer.put(author, "app.bsky.feed.post", rkey, value, _iso(at))
        root = value["reply"]["root"] if "reply" in value else {"uri": uri, "cid": cid}
        posts.append((uri, cid, root["uri"], root["cid"]))
        tick(1)
    for n, at in enumerate(_times(rng, shape.likes)):
        # Likes go to posts of the few days before them, popular ones more often.
        newest = min(len(posts) - 1, int((at - EPOCH_END + SPAN) / SPAN * len(posts)))
        post = posts[max(0, newest - int(30_000 * rng.random() ** 3))]
        liker = dids[rng.randrange(shape.accounts)]
        value = {
            "$type": "app.bsky.feed.like",
            "subject": {"uri": post[0], "cid": post[1]},
            "createdAt": _iso(at),
        }
        writer.put(liker, "app.bsky.feed.like", _rkey(at, n), value, _iso(at))
        tick(1)
    writer.close()
    threads = [p[0] for p in posts if p[2] == p[0]]
    meta = {
        "viewers": viewers,
        # Thread roots and recent posts the bench reads; accounts whose profiles it reads.
        "posts": [
            posts[len(posts) - 1 - rng.randrange(min(len(posts), 50_000))][2] for _ in range(500)
        ],
        "roots": threads[-2_000:],
        "actors": [dids[_skewed(rng, shape.accounts, 1.5)] for _ in range(500)],
        "seconds": time.perf_counter() - started,
    }
    (folder / "network.json").write_text(json.dumps(meta))


def load(root: Path, shape: Shape, rebuild: bool, pg_url: str | None = None) -> Network:
    """The cached network of this shape under `root` (in PostgreSQL at `pg_url` when given),
    built first when missing or asked."""
    folder = root / (shape.key + ("-postgres" if pg_url else ""))
    network = Network(folder, shape, [], None, pg_url)
    built = None
    if rebuild or not (folder / "network.json").exists():
        where = f"PostgreSQL schema {network.schema}" if pg_url else str(folder)
        print(f"building the network ({shape.records:,} records) into {where}", flush=True)
        started = time.perf_counter()
        build(folder, shape, (pg_url, network.schema) if pg_url else None)
        built = time.perf_counter() - started
    meta = json.loads((folder / "network.json").read_text())
    network = Network(folder, shape, meta["viewers"], built, pg_url)
    migrate_cached(network)
    return network


def migrate_cached(network: Network) -> None:
    """Bring a network built by older code to the current schema before it is served (the
    server would do it at start, within its start-up timeout)."""
    started = time.perf_counter()
    if network.postgres is None:
        lite = connect(network.db_path)
        migrate(lite, SQLITE)
        lite.close()
    else:
        server = postgres.connect(network.postgres, network.schema)
        migrate(server, POSTGRES)
        server.close()
    if time.perf_counter() - started > 1:
        print(f"migrated the cached network in {time.perf_counter() - started:.0f} s")

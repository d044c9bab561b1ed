"""The appview's indexer: firehose records indexed per second on SQLite, with and without
commit verification, and disk bytes per indexed record.

Run: ./scripts/setup test && .venv/bin/python bench/appview.py [--accounts 500] [--commits 20]
It makes (or reuses, cached under the temp dir) validly signed sync 1.1 commits with
bench/relay_traffic.py (1-3 posts, likes or follows per commit, some deletes, the inversion
proof blocks), registers every account at a real PLC (`skyloft plc serve`), then feeds the
recorded frames to the appview's ingest in-process (appview.ingest.Ingest.consume: frame
decoding, the signature and inversion checks unless trusted, lexicon validation, batched
SQLite transactions with the cursor), timing from the first frame to the last one durable. DID
documents are resolved and the index workers (BSKY_INDEX_WORKERS from the environment, one per
core by default) started in a warm-up first (the resolver caches them, as in steady state); the
websocket itself is not part of the timing. Each account's stream opens with a #sync of its
prefilled repo, whose export the recording does not hold: before timing, every repo is marked
synchronized at that head (as a backfill of it would leave it), so the commits after it index.
The issue's goal (10,000 records/s) and the reference's measured ~90/s are printed beside
the figures; the reference does not run here.

CPU per record is printed beside the rate (the machine's cores are shared, so the wall-clock
rate is noisy): the bench process's own CPU time over the timed span (the event loop and the
SQLite writer thread), and its index workers' (its child processes', from /proc).

With `--postgres URL` (e.g. postgresql://postgres@127.0.0.1:5432/test) the same frames are also
indexed into PostgreSQL, in a schema made for the run and dropped after it, and its figures
(disk: the tables' and indexes' total relation size) are printed beside SQLite's.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from appview.changes import Backfilled  # noqa: E402
from appview.config import AppviewConfig  # noqa: E402
from appview.db import Database, index, open_database  # noqa: E402
from appview.ingest import SERVICE, Ingest  # noqa: E402
from atcore.frames import CommitEvent, SyncEvent, decode_frame  # noqa: E402
from atcore.identity.resolver import IdentityResolver  # noqa: E402
from atcore.lexicon import Catalog  # noqa: E402
from bench.pds import cpu_seconds  # noqa: E402
from bench.relay_traffic import Plan, generate, load_frames  # noqa: E402
from tests.servers import running_service  # noqa: E402

GOAL = 10_000
REFERENCE = 90


async def register(plc_url: str, idents: list[dict[str, Any]]) -> None:
    async with httpx.AsyncClient(timeout=60) as http:
        queue = list(idents)

        async def worker() -> None:
            while queue:
                ident = queue.pop()
                response = await http.post(f"{plc_url}/{ident['did']}", json=ident["op"])
                response.raise_for_status()

        await asyncio.gather(*(worker() for _ in range(8)))


async def resolve_all(resolver: IdentityResolver, dids: set[str]) -> None:
    """Resolve (and so cache) every DID document, a few at a time: all at once, a loaded
    machine's PLC answers some after the resolver's timeout."""
    queue = list(dids)

    async def worker() -> None:
        while queue:
            await resolver.resolve_did(queue.pop())

    await asyncio.gather(*(worker() for _ in range(8)))


async def frames_of(frames: list[bytes], trusted: bool) -> AsyncIterator[object]:
    """The frames decoded as the appview's subscription decodes them."""
    for frame in frames:
        yield decode_frame(frame, trusted=trusted)


def postgres_bytes(url: str, schema: str) -> int:
    """The size of a PostgreSQL schema's tables with their indexes."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = %s AND c.relkind = 'r'",
            (schema,),
        ).fetchone()
    return int(row[0] or 0) if row else 0


def children_cpu() -> float:
    """CPU seconds so far of this process's children (the index workers)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if int(fields[1]) == os.getpid():
            total += cpu_seconds(int(stat.parent.name))
    return total


def disk_bytes(db: Database) -> int:
    """The store's size on disk: SQLite's files, or PostgreSQL's tables with their indexes
    (the schema is dropped after)."""
    if hasattr(db, "path"):
        return sum(p.stat().st_size for p in db.path.parent.glob("appview.sqlite*"))
    size = postgres_bytes(db.url, db.schema)
    with psycopg.connect(db.url) as conn:
        conn.execute(f'DROP SCHEMA "{db.schema}" CASCADE')
    return size


async def run(
    frames: list[bytes], plc_url: str, trust: bool, data: Path, postgres: str | None
) -> dict[str, float]:
    records = sum(len(e.ops) for e in map(decode_frame, frames) if isinstance(e, CommitEvent))
    env = {"BSKY_DB_POSTGRES_URL": postgres or ""}
    if "BSKY_INDEX_WORKERS" in os.environ:
        env["BSKY_INDEX_WORKERS"] = os.environ["BSKY_INDEX_WORKERS"]
    if postgres is not None:
        env["BSKY_DB_POSTGRES_SCHEMA"] = f"bench_{os.getpid()}_{int(trust)}"
    config = AppviewConfig.load(env, data_dir=str(data))
    db = open_database(config)
    await db.open()
    heads = [
        Backfilled(e.did, e.rev, (), ())
        for e in map(decode_frame, frames)
        if isinstance(e, SyncEvent)
    ]
    await db.write(index.apply, heads, SERVICE, None)
    async with httpx.AsyncClient() as http:
        resolver = IdentityResolver(plc_url, http, allow_private=True)
        catalog = Catalog.load_builtin()
        ingest = Ingest(
            db,
            "ws://unused",
            resolver,
            catalog,
            http,
            trust_relay=trust,
            workers=config.index_workers,
        )
        # Handle resolution runs beside the stream in production; it is not timed here.
        ingest.identities.see = lambda did: None  # type: ignore[method-assign]
        dids = {e.repo for e in map(decode_frame, frames) if isinstance(e, CommitEvent)}
        if not trust:
            await resolve_all(resolver, dids)
        await ingest.start(follow=False)
        await ingest.ready()
        last = max(getattr(decode_frame(f), "seq", 0) for f in frames)
        started, cpu, workers_cpu = time.perf_counter(), time.process_time(), children_cpu()
        await ingest.consume(frames_of(frames, trust))
        await ingest.wait_for(lambda: ingest.applied_seq == last)
        elapsed = time.perf_counter() - started
        cpu, workers_cpu = time.process_time() - cpu, children_cpu() - workers_cpu
        await ingest.close()
    await db.close()
    size = disk_bytes(db)
    if ingest.backfill.fetched or ingest.backfill.failures:
        raise SystemExit("a repo was backfilled during the run: its head was not marked")
    return {
        "records": records,
        "seconds": elapsed,
        "cpu": cpu,
        "workers_cpu": workers_cpu,
        "bytes": size,
        "unverified": ingest.unverified,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=500)
    parser.add_argument("--commits", type=int, default=20)
    parser.add_argument("--postgres", metavar="URL", help="also index into this PostgreSQL")
    args = parser.parse_args()
    plan = Plan(accounts=args.accounts, hosts=1, commits=args.commits, prefill=5)
    cache = Path(tempfile.gettempdir()) / "skyloft-bench-relay"
    folder = generate(plan, cache)
    idents = json.loads((folder / "accounts.json").read_text())
    frames = load_frames(folder / "host0.frames")
    with tempfile.TemporaryDirectory() as tmp:
        with running_service("plc", Path(tmp) / "plc") as plc_url:
            asyncio.run(register(plc_url, idents))
            print(f"{len(frames)} commits of {len(idents)} accounts")
            stores = [("SQLite", None)] + ([("PostgreSQL", args.postgres)] if args.postgres else [])
            for (store, url), trust in itertools.product(stores, (False, True)):
                data = Path(tmp) / f"appview-{store}-{trust}"
                result = asyncio.run(run(frames, plc_url, trust, data, url))
                rate = result["records"] / result["seconds"]
                mode = "trusting the relay" if trust else "verifying commits "
                print(
                    f"index into {store:10}, {mode}: {result['records']:.0f} records in "
                    f"{result['seconds']:.2f} s = {rate:,.0f} records/s "
                    f"(goal {GOAL:,}; reference appview ~{REFERENCE}/s), CPU/record "
                    f"{result['cpu'] / result['records'] * 1e6:,.0f} µs in process + "
                    f"{result['workers_cpu'] / result['records'] * 1e6:,.0f} µs in workers, "
                    f"{result['bytes'] / result['records']:,.0f} disk bytes/record, "
                    f"{result['unverified']:.0f} unverified"
                )


if __name__ == "__main__":
    main()

"""The feed-generator SDK under load: events/s from a relay's firehose through a keyword feed
function into SQLite, and getFeedSkeleton latency at concurrency 8 over many stored posts.

Run: ./scripts/setup test && .venv/bin/python bench/feedgen.py [--frames 40000] [--verify]

It reuses (or makes, cached under the temp dir) bench/relay.py's validly signed commits (posts,
likes and follows with random words), replays them re-sequenced from a relay stand-in child
process (bench/stream_traffic.py) at full speed into a real `skyloft feedgen serve` whose feed
keeps the posts mentioning "python"; then as many more through a real `skyloft jetstream serve`
(trusting the relay) that the feed generator reads instead (FEEDGEN_JETSTREAM_URL). With
FEEDGEN_TRUST_RELAY=true the CAR hashes, commit blocks and records are still checked and every
post decoded; `--verify` also checks each signature and MST proof (the accounts then registered
at a real PLC).

Then the store is filled with `--posts` selected posts and `--requests` getFeedSkeleton calls
(limit 30, as the appview asks; every fourth follows the cursor of the page before) are made by
8 concurrent keep-alive connections from this process, timed client-side. Every process shares
the machine's 2 cores.

Side by side: the TypeScript starter kit is a repository template rather than a package, so its
indexing loop is written out in bench/js/starter_kit_loop.mjs (its header says exactly what it
does), pinned in bench/js/package.json, and fed the same frames by the same relay stand-in right
after the SDK, in two variants: `kit`, the kit's own code (@atproto/xrpc-server's Subscription,
every message and record checked against the lexicons, readCar and cborToLexRecord, one Kysely
statement per event over better-sqlite3, the cursor written every 20th event; it verifies no
commit and resolves no identity), and `sync`, the newer @atproto/sync Firehose client with
prepared better-sqlite3 statements (trusting the relay as the SDK does: unauthenticatedCommits;
with `--verify` it authenticates commits against the PLC, the kit's code never does). The ratios
printed compare the SDK with each.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from atcore.frames import decode_frame  # noqa: E402
from bench.relay import child, pct, proc_status, register  # noqa: E402
from bench.relay_traffic import (  # noqa: E402
    Plan,
    generate,
    load_frames,  # noqa: E402
)
from bench.stream_traffic import resequenced  # noqa: E402
from feedgen.app import load_feed  # noqa: E402
from feedgen.firehose import FirehoseSource  # noqa: E402
from feedgen.indexer import MAX_BATCH, to_batch  # noqa: E402
from feedgen.store import SCHEMA, Batch, FeedStore  # noqa: E402
from skyloft.services import ServiceProcess  # noqa: E402
from tests.servers import running_service  # noqa: E402

TRAFFIC = Path(__file__).resolve().parent / "stream_traffic.py"
KIT_LOOP = Path(__file__).resolve().parent / "js" / "starter_kit_loop.mjs"
GOAL_EVENTS = 10_000
GOAL_P99_MS = 5.0
PUBLISHER = "did:plc:benchbenchbenchbenchbenc"
FEED_MODULE = '''
    """Bench feed: posts that mention python."""
    from feedgen.sdk import Feed, Record

    feed = Feed("python")

    @feed.select
    def python_posts(record: Record) -> float | None:
        text = record.value.get("text")
        return record.time_us if isinstance(text, str) and "python" in text else None
'''


def status(url: str) -> dict[str, Any]:
    return httpx.get(url + "/", timeout=10).json()  # type: ignore[no-any-return]


def until_processed(url: str, events: int, timeout: float = 600.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = status(url)
        if now["events"] >= events:
            return now
        time.sleep(0.05)
    raise TimeoutError(f"the feed generator processed {now['events']} of {events} events")


def fill(db: Path, posts: int) -> None:
    """`posts` selected posts, ranked by a microsecond clock, as the indexer stores them."""
    conn = sqlite3.connect(db)
    conn.executescript(SCHEMA)
    start = int(time.time() * 1e6) - posts * 1000
    rows = (
        (
            f"at://did:plc:{n % 5000:024d}/app.bsky.feed.post/3l{n:011d}",
            f"did:plc:{n % 5000:024d}",
            "app.bsky.feed.post",
            None,
            float(start + n * 1000),
            1,
        )
        for n in range(posts)
    )
    conn.executemany("INSERT OR REPLACE INTO item VALUES (?, ?, ?, ?, ?, ?)", rows)
    conn.commit()
    conn.close()


class KeepAlive:
    """A minimal HTTP/1.1 keep-alive client (httpx costs more CPU per request than the server
    does here, so it would time itself): one connection, one request at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, url: str) -> KeepAlive:
        host, port = url.removeprefix("http://").split(":")
        return cls(*await asyncio.open_connection(host, int(port)))

    async def get(self, path: str) -> tuple[int, bytes]:
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


async def skeleton_latency(url: str, requests: int, concurrency: int) -> list[float]:
    feed = quote(f"at://{PUBLISHER}/app.bsky.feed.generator/python", safe="")
    base = f"/xrpc/app.bsky.feed.getFeedSkeleton?feed={feed}&limit=30"
    timings: list[float] = []
    rng = random.Random(1)

    async def worker(n: int) -> None:
        client = await KeepAlive.open(url)
        cursor = None
        try:
            for _ in range(n):
                path = base
                if cursor is not None and rng.random() < 0.25:
                    path += "&cursor=" + cursor
                started = time.perf_counter()
                status, body = await client.get(path)
                timings.append(time.perf_counter() - started)
                if status != 200:
                    raise RuntimeError(f"getFeedSkeleton answered {status}: {body[:200]!r}")
                cursor = json.loads(body).get("cursor")
        finally:
            client.close()

    await worker(50)  # warm up the server and the page cache
    timings.clear()
    await asyncio.gather(*(worker(requests // concurrency) for _ in range(concurrency)))
    return timings


async def pipeline_rate(frames: list[bytes], module: Path, db: Path) -> float:
    """Events/s through the SDK's own steps in this process, no socket: decode and check the
    frame (trusting the relay), the feed function, batches of MAX_BATCH stored with the cursor."""
    feed = load_feed(str(module))
    source = FirehoseSource("ws://unused", feed.collections, None)
    store = FeedStore.sqlite(db, "bench")
    await store.open()
    try:
        started = time.perf_counter()
        batch = Batch([], [], [])
        for frame in frames:
            event = await source.event(frame)
            if event is None:
                continue
            to_batch(feed, list(event.changes), batch)
            batch.position = event.position
            if len(batch) >= MAX_BATCH:
                await store.write(batch)
                batch = Batch([], [], [])
        await store.write(batch)
        return len(frames) / (time.perf_counter() - started)
    finally:
        await store.close()


def post_ops(frames: list[bytes]) -> int:
    """How many Jetstream events (one per op) the frames make in app.bsky.feed.post."""
    return sum(
        op.path.startswith("app.bsky.feed.post/")
        for event in map(decode_frame, frames)
        for op in getattr(event, "ops", ())
    )


def timed_ingest(
    relay: Any, feedgen: ServiceProcess, frames: int, events: int
) -> tuple[float, float]:
    """Send `frames` from the relay stand-in; seconds until the feed generator processed
    `events`, and its CPU share meanwhile."""
    cpu = proc_status(feedgen.pid)["cpu"]
    started = time.perf_counter()
    sent = relay.ask(f"send {frames} 0")
    print(f"  relay stand-in sent {frames:,} frames in {sent['seconds']:.2f} s", flush=True)
    until_processed(feedgen.url, events)
    seconds = time.perf_counter() - started
    return seconds, (proc_status(feedgen.pid)["cpu"] - cpu) / seconds


def starter_kit(
    variant: str, relay: Any, relay_ws: str, tmp: Path, frames: int, plc_url: str | None
) -> tuple[float, float, str | None]:
    """Seconds the starter kit's loop (bench/js/starter_kit_loop.mjs, `variant` kit or sync)
    takes to index the next `frames` frames the relay stand-in sends again (the SDK's: seqs 1
    to `frames`), the CPU seconds it used meanwhile, and why it stopped short (its keep-alive
    client dropped the connection), if it did."""
    service = relay_ws.removesuffix("/xrpc/com.atproto.sync.subscribeRepos")
    db = tmp / f"{variant}.sqlite"
    command = ["node", str(KIT_LOOP), variant, service, str(db), str(frames)]
    with subprocess.Popen(
        command + ([plc_url] if plc_url else []), stdout=subprocess.PIPE, text=True
    ) as kit:
        try:
            relay.ask("wait")
            time.sleep(3.0)  # Node loaded the kit's modules and opened its socket
            cpu = proc_status(kit.pid)["cpu"]
            started = time.perf_counter()
            relay.ask(f"send {frames} 0")
            assert kit.stdout is not None
            line = kit.stdout.readline()
            if not line:
                raise RuntimeError("the starter kit's loop exited early")
            seconds = time.perf_counter() - started
            end = json.loads(line)
            lost = end.get("lost") and f"{end['lost']} after seq {end['seq']:,} of {frames:,}"
            return seconds, proc_status(kit.pid)["cpu"] - cpu, lost
        finally:
            if kit.poll() is None:
                kit.terminate()


KIT_VARIANTS = {
    "kit": "its own code: xrpc-server Subscription, lexicon checks, Kysely",
    "sync": "@atproto/sync Firehose, prepared better-sqlite3 statements",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=40_000)
    parser.add_argument("--posts", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=4_000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "skyloft-bench-relay"))
    parser.add_argument("--verify", action="store_true", help="check signatures and proofs")
    args = parser.parse_args()
    plan = Plan(accounts=200, hosts=1, commits=20, prefill=5)
    folder = generate(plan, Path(args.cache))
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-feedgen-")))
        module = tmp / "bench_python_feed.py"
        module.write_text(textwrap.dedent(FEED_MODULE))
        frames = resequenced(load_frames(folder / "host0.frames"), 2 * args.frames)
        rate = asyncio.run(pipeline_rate(frames[: args.frames], module, tmp / "pipeline.sqlite"))
        print(
            f"SDK pipeline in one process (decode, check, feed function, store; no socket): "
            f"{rate:,.0f} events/s",
            flush=True,
        )
        relay = stack.enter_context(child("relay", str(folder / "host0.frames"), script=TRAFFIC))
        port = relay.read()["port"]
        relay.ask(f"prepare {2 * args.frames}")
        relay_ws = f"ws://127.0.0.1:{port}/xrpc/com.atproto.sync.subscribeRepos"
        env = {
            "FEEDGEN_DEV_MODE": "true",
            "FEEDGEN_PUBLISHER_DID": PUBLISHER,
            "FEEDGEN_SUBSCRIPTION_ENDPOINT": relay_ws,
            "FEEDGEN_TRUST_RELAY": "false" if args.verify else "true",
        }
        if args.verify:
            plc_url = stack.enter_context(running_service("plc", tmp / "plc"))
            idents = json.loads((folder / "accounts.json").read_text())
            asyncio.run(register(plc_url, idents, [port]))
            env["FEEDGEN_PLC_URL"] = plc_url

        feedgen = ServiceProcess("feedgen", tmp / "fg", str(module), env=env, timeout=60)
        try:
            relay.ask("wait")
            seconds, cpu = timed_ingest(relay, feedgen, args.frames, args.frames)
        finally:
            feedgen.stop()
        mode = "verifying every commit" if args.verify else "trusting the relay"
        print(
            f"from the relay ({mode}): {args.frames:,} firehose events in {seconds:.2f} s: "
            f"{args.frames / seconds:,.0f} events/s end to end (goal {GOAL_EVENTS:,}), "
            f"feedgen at {cpu:.0%} of a core, {cpu * seconds / args.frames * 1e6:.0f} µs of "
            "CPU each",
            flush=True,
        )

        # The starter kit's loop on the same frames, alone as the SDK was.
        for variant, what in KIT_VARIANTS.items():
            relay.ask(f"rewind {args.frames}")
            kit_seconds, kit_cpu, lost = starter_kit(
                variant, relay, relay_ws, tmp, args.frames, env.get("FEEDGEN_PLC_URL")
            )
            if lost:
                print(
                    f"TypeScript starter kit's loop, {variant}: its client dropped the "
                    f"connection, more than 10 s behind ({lost}; the frames since are lost "
                    f"to it), after {kit_seconds:.2f} s and {kit_cpu:.2f} s of CPU",
                    flush=True,
                )
                continue
            print(
                f"TypeScript starter kit's loop, {variant} ({what}; {mode}): {args.frames:,} "
                f"firehose events in {kit_seconds:.2f} s: {args.frames / kit_seconds:,.0f} "
                f"events/s, {kit_cpu / args.frames * 1e6:.0f} µs of CPU each; the SDK "
                f"{kit_seconds / seconds:.1f}x as fast (goal > 20x), "
                f"{kit_cpu / (cpu * seconds):.1f}x less CPU per event",
                flush=True,
            )

        # The stream in between: jetstream (trusting the relay) serves the feed its posts only.
        js_env = {"JETSTREAM_WS_URL": relay_ws, "JETSTREAM_TRUST_RELAY": "true"}
        jetstream = stack.enter_context(running_service("jetstream", tmp / "js", env=js_env))
        stream_env = {**env, "FEEDGEN_JETSTREAM_URL": jetstream}
        posts = post_ops(frames[args.frames :])
        feedgen = ServiceProcess("feedgen", tmp / "fg-js", str(module), env=stream_env, timeout=60)
        try:
            time.sleep(1.0)  # both subscriptions open before the first frame
            seconds, cpu = timed_ingest(relay, feedgen, args.frames, posts)
        finally:
            feedgen.stop()
        print(
            f"from the stream: {args.frames:,} firehose events ({posts:,} post events from "
            f"jetstream) in {seconds:.2f} s: {args.frames / seconds:,.0f} firehose events/s "
            f"end to end, {posts / seconds:,.0f} stream events/s into the feed; feedgen at "
            f"{cpu:.0%} of a core",
            flush=True,
        )

        fill(tmp / "fg" / "feedgen.sqlite", args.posts)
        feedgen = ServiceProcess("feedgen", tmp / "fg", str(module), env=env, timeout=60)
        try:
            timings = asyncio.run(skeleton_latency(feedgen.url, args.requests, args.concurrency))
        finally:
            feedgen.stop()
        ms = [t * 1000 for t in timings]
        print(
            f"getFeedSkeleton over {args.posts:,} stored posts, concurrency {args.concurrency}: "
            f"{len(ms):,} requests, p50 {pct(ms, 0.5):.2f} ms, p99 {pct(ms, 0.99):.2f} ms "
            f"(goal p99 < {GOAL_P99_MS} ms)",
            flush=True,
        )


if __name__ == "__main__":
    main()

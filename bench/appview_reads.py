"""The appview's read API at scale: getTimeline, getPostThread and getProfile p50/p99 at
concurrency 8 over HTTP against a real `skyloft appview serve`, viewers authenticated with
service-auth JWTs as their PDS would mint them.

Run: ./scripts/setup test && .venv/bin/python bench/appview_reads.py [--scale 1] [--rebuild]
    [--requests 2000] [--concurrency 8] [--postgres postgresql://postgres@127.0.0.1:5432/test]

The network (bench/appview_network.py: at scale 1, 100k accounts, 1M posts, 5M likes, 1M
follows, written through the indexer's storage code) is cached under /work/bench-data (or
$SKYLOFT_BENCH_DATA) and reused; `--rebuild` builds it from scratch and prints how long that
took. A real PLC (`skyloft plc serve`) holds the viewers' DID documents, against which the
appview verifies each token (then caches the document, as in steady state). Requests use
pre-minted tokens so the client's signing is not timed; the client runs on the same machine.
The issue's goal (p99 under 20 ms) is printed beside the figures. With `--postgres` the
network is built into (and served from) a PostgreSQL schema named after its shape, kept there
for later runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from atcore.jwt import encode_es  # noqa: E402
from atcore.keys import private_key_from_hex  # noqa: E402
from bench.appview import postgres_bytes, register  # noqa: E402
from bench.appview_network import Network, Shape, load  # noqa: E402
from tests.servers import running_service  # noqa: E402

GOAL_P99_MS = 20.0
TOKEN_SECONDS = 3_600
METHODS = ("app.bsky.feed.getTimeline", "app.bsky.feed.getPostThread", "app.bsky.actor.getProfile")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def tokens(network: Network, audience: str) -> list[dict[str, str]]:
    """Per viewer, a token for each method."""
    now = int(time.time())
    out = []
    for viewer in network.viewers:
        key = private_key_from_hex("k256", viewer["key"])
        claims = {"iss": viewer["did"], "aud": audience, "iat": now, "exp": now + TOKEN_SECONDS}
        out.append({m: encode_es({**claims, "lxm": m}, key) for m in METHODS})
    return out


def requests_for(network: Network, method: str, rng: random.Random) -> Callable[[], dict[str, Any]]:
    meta = network.meta()
    if method == "app.bsky.feed.getTimeline":
        return lambda: {"limit": 50}
    if method == "app.bsky.feed.getPostThread":
        return lambda: {"uri": rng.choice(meta["posts"])}
    return lambda: {"actor": rng.choice(meta["actors"])}


async def measure(
    url: str, network: Network, method: str, count: int, concurrency: int, viewers: list[Any]
) -> tuple[list[float], int]:
    rng = random.Random(method)
    params = requests_for(network, method, rng)
    latencies: list[float] = []
    bytes_read = 0
    remaining = count
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as http:

        async def worker() -> None:
            nonlocal remaining, bytes_read
            while remaining > 0:
                remaining -= 1
                headers = {"authorization": f"Bearer {rng.choice(viewers)[method]}"}
                started = time.perf_counter()
                response = await http.get(f"/xrpc/{method}", params=params(), headers=headers)
                latencies.append((time.perf_counter() - started) * 1000)
                if response.status_code != 200:
                    raise RuntimeError(f"{method}: {response.status_code} {response.text[:300]}")
                bytes_read += len(response.content)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, bytes_read


async def run(url: str, network: Network, requests: int, concurrency: int) -> None:
    async with httpx.AsyncClient(base_url=url) as http:
        audience = (await http.get("/.well-known/did.json")).json()["id"]
    viewers = tokens(network, audience)
    for method in METHODS:
        # Warm-up: every viewer's DID document resolved once, caches and pages warm.
        await measure(url, network, method, max(len(viewers), requests // 10), concurrency, viewers)
        started = time.perf_counter()
        latencies, size = await measure(url, network, method, requests, concurrency, viewers)
        elapsed = time.perf_counter() - started
        p99 = percentile(latencies, 0.99)
        print(
            f"{method.rsplit('.', 1)[1]:14} p50 {statistics.median(latencies):6.1f} ms  "
            f"p99 {p99:6.1f} ms  {requests / elapsed:6.0f} req/s  "
            f"{size / requests / 1024:5.1f} KiB/response  "
            f"(goal p99 < {GOAL_P99_MS:.0f} ms: {'met' if p99 < GOAL_P99_MS else 'not met'})",
            flush=True,
        )


def store(network: Network) -> str:
    if network.postgres is None:
        return f"SQLite {network.db_path.stat().st_size / 2**30:.2f} GiB"
    return f"PostgreSQL {postgres_bytes(network.postgres, network.schema) / 2**30:.2f} GiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=float, default=1.0, help="1 = 100k accounts, 1M posts")
    parser.add_argument("--rebuild", action="store_true", help="build the network from scratch")
    parser.add_argument("--requests", type=int, default=2_000, help="per method")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--postgres", metavar="URL", help="build and serve from PostgreSQL")
    args = parser.parse_args()
    root = Path(os.environ.get("SKYLOFT_BENCH_DATA", "/work/bench-data")) / "appview-reads"
    shape = Shape.at(args.scale)
    network = load(root, shape, args.rebuild, args.postgres)
    if network.build_seconds is not None:
        print(
            f"built {shape.records:,} records through appview.db.index in "
            f"{network.build_seconds:.0f} s ({shape.records / network.build_seconds:,.0f}/s)"
        )
    print(
        f"network: {shape.accounts:,} accounts, {shape.posts:,} posts, {shape.likes:,} likes, "
        f"{shape.follows:,} follows; {store(network)}; "
        f"{args.requests} requests per method at concurrency {args.concurrency}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        with running_service("plc", Path(tmp) / "plc") as plc_url:
            asyncio.run(register(plc_url, network.viewers))
            env = {"BSKY_DID_PLC_URL": plc_url, "BSKY_DEV_MODE": "true"}
            if network.postgres is not None:
                env |= {
                    "BSKY_DB_POSTGRES_URL": network.postgres,
                    "BSKY_DB_POSTGRES_SCHEMA": network.schema,
                }
            with running_service("appview", network.db_path.parent, env=env) as url:
                asyncio.run(run(url, network, args.requests, args.concurrency))


if __name__ == "__main__":
    main()

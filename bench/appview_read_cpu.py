"""The appview's CPU per read request, in process: getTimeline, getPostThread and getProfile
sent one at a time through the ASGI app (httpx's ASGI transport, no sockets), each with a
viewer's service-auth JWT, on the network bench/appview_reads.py caches. It prints the process
CPU time per request (every thread: the event loop and the database reader) and the event
loop's share, the best of three rounds after a warm-up, beside a trivial route's cost (the
client and transport floor). Where bench/appview_reads.py shows how requests queue, this
shows what one costs.

Run: ./scripts/setup test && .venv/bin/python bench/appview_read_cpu.py [--scale 0.05]
    [--requests 200] [--cprofile METHOD]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import random
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from appview.app import create_app  # noqa: E402
from appview.config import AppviewConfig  # noqa: E402
from bench.appview import register  # noqa: E402
from bench.appview_network import Network, Shape, load  # noqa: E402
from bench.appview_reads import METHODS, requests_for, tokens  # noqa: E402
from tests.servers import running_service  # noqa: E402

ROUNDS = 3


async def cpu_per_request(
    send: Callable[[], Awaitable[None]], count: int, profile: cProfile.Profile | None = None
) -> tuple[float, float]:
    """Milliseconds of (process, this thread's) CPU time per call of `send`."""
    process, thread = time.process_time(), time.thread_time()
    if profile is not None:
        profile.enable()
    for _ in range(count):
        await send()
    if profile is not None:
        profile.disable()
    return (
        (time.process_time() - process) / count * 1000,
        (time.thread_time() - thread) / count * 1000,
    )


def sender(
    http: httpx.AsyncClient, network: Network, method: str, viewers: list[dict[str, str]]
) -> Callable[[], Awaitable[None]]:
    """One request to `method`, as a random viewer, with the parameters appview_reads sends."""
    rng = random.Random(method)
    params = requests_for(network, method, rng)

    async def send() -> None:
        token = rng.choice(viewers)[method]
        headers = {"authorization": f"Bearer {token}"}
        response = await http.get(f"/xrpc/{method}", params=params(), headers=headers)
        if response.status_code != 200:
            raise RuntimeError(f"{method}: {response.status_code} {response.text[:300]}")

    return send


async def run(plc_url: str, network: Network, count: int, profiled: str | None) -> None:
    await register(plc_url, network.viewers)
    env = {"BSKY_DID_PLC_URL": plc_url, "BSKY_DEV_MODE": "true"}
    app = create_app(AppviewConfig.load(env, data_dir=str(network.db_path.parent)))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://appview") as http:
            audience = (await http.get("/.well-known/did.json")).json()["id"]
            viewers = tokens(network, audience)

            async def health() -> None:
                (await http.get("/xrpc/_health")).raise_for_status()

            floor, _ = await cpu_per_request(health, count)
            for method in METHODS:
                send = sender(http, network, method, viewers)
                await cpu_per_request(send, max(count, len(viewers)))  # warm-up
                rounds = [await cpu_per_request(send, count) for _ in range(ROUNDS)]
                total, loop = min(rounds)
                print(
                    f"{method.rsplit('.', 1)[1]:14} {total:5.2f} ms CPU/request "
                    f"(event loop {loop:4.2f} ms; _health {floor:4.2f} ms)",
                    flush=True,
                )
                if method == profiled:
                    profile = cProfile.Profile()
                    await cpu_per_request(send, count, profile)
                    pstats.Stats(profile).sort_stats("tottime").print_stats(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=float, default=0.05, help="1 = 100k accounts, 1M posts")
    parser.add_argument("--requests", type=int, default=200, help="per method and round")
    parser.add_argument("--cprofile", metavar="METHOD", help="print the event loop's profile")
    args = parser.parse_args()
    root = Path(os.environ.get("SKYLOFT_BENCH_DATA", "/work/bench-data")) / "appview-reads"
    network = load(root, Shape.at(args.scale), False, None)
    with tempfile.TemporaryDirectory() as tmp:
        with running_service("plc", Path(tmp) / "plc") as plc_url:
            asyncio.run(run(plc_url, network, args.requests, args.cprofile))


if __name__ == "__main__":
    main()

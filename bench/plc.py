"""The PLC directory under load: operations accepted per second, resolutions per second.

Run: ./scripts/setup test && .venv/bin/python bench/plc.py [--dids 1000] [--concurrency 8]
Starts a real `skyloft plc serve` on a free port (stopped by pid at the end), signs every
operation before the clock starts, then times: genesis operations accepted, update operations
accepted, DID resolution through `IdentityResolver` uncached (every lookup an HTTP request)
and cached. No peer runs here: the reference directory needs PostgreSQL and Node 22.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from atcore.identity.plc import (  # noqa: E402
    did_for_genesis,
    genesis_op,
    op_cid,
    sign_operation,
    update_op,
)
from atcore.identity.resolver import IdentityResolver  # noqa: E402
from atcore.keys import generate_k256  # noqa: E402
from tests.servers import running_service  # noqa: E402


async def bounded(jobs: Sequence[Callable[[], Awaitable[Any]]], concurrency: int) -> float:
    """Run every job with at most `concurrency` in flight; returns the wall time in seconds."""
    queue = list(reversed(jobs))

    async def worker() -> None:
        while queue:
            await queue.pop()()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - start


async def run(url: str, dids: int, concurrency: int, repeat: int) -> list[tuple[str, float]]:
    rotation = generate_k256()
    signing = generate_k256().public_key().did_key()
    geneses = [
        sign_operation(
            genesis_op(
                signing_key=signing,
                rotation_keys=[rotation.public_key().did_key()],
                handle=f"user{i}.bench.test",
                pds="https://pds.bench.test",
            ),
            rotation,
        )
        for i in range(dids)
    ]
    names = [did_for_genesis(op) for op in geneses]
    updates = [
        sign_operation(update_op(op, op_cid(op), handle=f"renamed{i}.bench.test"), rotation)
        for i, op in enumerate(geneses)
    ]
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as http:

        def post(did: str, op: dict[str, Any]) -> Callable[[], Awaitable[None]]:
            async def send() -> None:
                (await http.post(f"/{did}", json=op)).raise_for_status()

            return send

        creates = [post(d, op) for d, op in zip(names, geneses, strict=True)]
        renames = [post(d, op) for d, op in zip(names, updates, strict=True)]
        t_genesis = await bounded(creates, concurrency)
        t_update = await bounded(renames, concurrency)

        uncached, cached = [], []
        for _ in range(repeat):
            resolver = IdentityResolver(url, http, cache_ttl=3600, allow_private=True)
            jobs = [partial(resolver.resolve_did, d) for d in names]
            uncached.append(await bounded(jobs, concurrency))
            cached.append(await bounded(jobs, concurrency))
        doc = await resolver.resolve_did(names[-1])
        assert doc.handle == f"renamed{dids - 1}.bench.test"
    return [
        ("genesis operations accepted", dids / t_genesis),
        ("update operations accepted", dids / t_update),
        ("DID resolutions, uncached (HTTP each)", dids / statistics.median(uncached)),
        ("DID resolutions, cached", dids / statistics.median(cached)),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dids", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, running_service("plc", Path(tmp) / "plc") as url:
        rows = asyncio.run(run(url, args.dids, args.concurrency, args.repeat))
    print(f"| PLC measure ({args.dids:,} DIDs, concurrency {args.concurrency}) | per second |")
    print("|---|---:|")
    for label, rate in rows:
        print(f"| {label} | {rate:,.0f} |")


if __name__ == "__main__":
    main()

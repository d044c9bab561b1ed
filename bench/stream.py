"""Jetstream under load: relay events ingested per second, deliveries to K filtered consumers, lag.

Run: ./scripts/setup test && .venv/bin/python bench/stream.py [--consumers 1,100,1000]
It reuses (or makes, cached under the temp dir) bench/relay.py's validly signed commits, then
starts a relay stand-in in a child process (a websockets server replaying them, re-sequenced,
at full speed or a fixed rate), a real `skyloft jetstream serve` reading it with
JETSTREAM_TRUST_RELAY=true (the relay verified them: the CAR's blocks are not hashed again nor
the commit block read, but every record is still decoded strictly into its JSON) or, with
`--verify`, checking every hash, signature and MST proof (the accounts then registered at a
real PLC), and K consumers of /subscribe in another child process (raw sockets: count frames,
time one in eight from its `time_us`).

Figures: events/s ingested at full speed (each commit's ops become events) and Jetstream's CPU
per event ingested; then, for each K, with the relay sending at `--rate` frames/s for
`--seconds`: events/s delivered to each consumer and in all, delivery lag p50/p99
(Jetstream's stamp -> consumer receive), Jetstream's CPU and RSS (from /proc), the time it was
runnable but waited for a CPU that other work held (schedstat), its CPU per event delivered,
and the consumers' CPU and wait for one (were their process the bound, its CPU would be near
100 %). Every process shares the machine's cores. No peer runs here: the official Jetstream
needs Go; the issue's goals are printed beside the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.relay import child, pct, proc_status, register, runqueue_wait  # noqa: E402
from bench.relay_traffic import Plan, generate  # noqa: E402
from skyloft.services import ServiceProcess  # noqa: E402
from tests.servers import running_service  # noqa: E402

TRAFFIC = Path(__file__).resolve().parent / "stream_traffic.py"
GOAL_INGEST = 10_000
GOAL_PER_CONSUMER = 1_000
GOAL_LAG = 0.1


def status(url: str) -> dict[str, Any]:
    return httpx.get(url + "/", timeout=10).json()  # type: ignore[no-any-return]


def until_ingested(url: str, frames: int, timeout: float = 300.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while (now := status(url))["framesIn"] < frames:
        if time.monotonic() > deadline:
            raise RuntimeError(f"Jetstream ingested {now['framesIn']} of {frames} frames")
        time.sleep(0.05)
    return now


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--consumers", default="1,100,1000")
    parser.add_argument("--filter", default="wantedCollections=app.bsky.feed.like")
    parser.add_argument("--ingest", type=int, default=40_000, help="frames, full speed")
    # 1,450 frames/s make about 1,000 likes/s: the goal's rate for each consumer.
    parser.add_argument("--rate", type=float, default=1450, help="frames/s when fanning out")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "skyloft-bench-relay"))
    parser.add_argument("--verify", action="store_true", help="check signatures and proofs")
    args = parser.parse_args()
    plan = Plan(accounts=200, hosts=1, commits=20, prefill=5)
    folder = generate(plan, Path(args.cache))
    ks = [int(k) for k in args.consumers.split(",")]
    per_phase = int(args.rate * args.seconds)
    total = args.ingest + per_phase * len(ks)
    rows: list[dict[str, Any]] = []
    with ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-stream-"))
        relay = stack.enter_context(child("relay", str(folder / "host0.frames"), script=TRAFFIC))
        port = relay.read()["port"]
        print(f"re-sequencing {total} frames", flush=True)
        relay.ask(f"prepare {total}")
        env = {
            "JETSTREAM_WS_URL": f"ws://127.0.0.1:{port}/xrpc/com.atproto.sync.subscribeRepos",
            "JETSTREAM_TRUST_RELAY": "false" if args.verify else "true",
        }
        if args.verify:
            plc_url = stack.enter_context(running_service("plc", Path(tmp) / "plc"))
            idents = json.loads((folder / "accounts.json").read_text())
            asyncio.run(register(plc_url, idents, [port]))
            env |= {"JETSTREAM_PLC_URL": plc_url, "JETSTREAM_DEV_MODE": "true"}
        jetstream = ServiceProcess("jetstream", Path(tmp) / "js", env=env, timeout=60)
        try:
            relay.ask("wait")
            before, cpu = status(jetstream.url), proc_status(jetstream.pid)["cpu"]
            started = time.perf_counter()
            relay.ask(f"send {args.ingest} 0")
            after = until_ingested(jetstream.url, args.ingest)
            seconds = time.perf_counter() - started
            used = proc_status(jetstream.pid)["cpu"] - cpu
            events = after["eventsOut"] - before["eventsOut"]
            mode = "verifying" if args.verify else "trusting the relay"
            print(
                f"ingest ({mode}): {args.ingest} frames, {events} events in {seconds:.2f} s: "
                f"{events / seconds:,.0f} events/s (goal {GOAL_INGEST:,}), "
                f"{used / seconds:.0%} of a core, {used / events * 1e6:.1f} µs of CPU per event",
                flush=True,
            )
            sent = args.ingest
            for k in ks:
                rows.append(fan_out(jetstream, relay, k, args, sent, per_phase))
                sent += per_phase
            print_table(rows, args)
        finally:
            code = jetstream.stop()
            if code != 0:
                print(jetstream.log_tail())


def fan_out(
    jetstream: ServiceProcess, relay: Any, k: int, args: argparse.Namespace, sent: int, n: int
) -> dict[str, Any]:
    with child("consumers", jetstream.url, script=TRAFFIC) as consumers:
        consumers.ask(f"connect {k} {args.filter}")
        time.sleep(0.5)
        consumers.ask("report")
        cpu = proc_status(jetstream.pid)["cpu"]
        waited = runqueue_wait(jetstream.pid)
        reader_cpu = proc_status(consumers.proc.pid)["cpu"]
        reader_waited = runqueue_wait(consumers.proc.pid)
        started = time.perf_counter()
        relay.ask(f"send {n} {args.rate}")
        until_ingested(jetstream.url, sent + n)
        time.sleep(1.0)  # what is still on its way to the consumers
        seconds = time.perf_counter() - started
        used = proc_status(jetstream.pid)["cpu"] - cpu
        waited = runqueue_wait(jetstream.pid) - waited
        reader_used = proc_status(consumers.proc.pid)["cpu"] - reader_cpu
        reader_waited = runqueue_wait(consumers.proc.pid) - reader_waited
        report = consumers.ask("report")["consumers"]
        consumers.ask("close")
    counts = [c["count"] for c in report]
    lags = [lag for c in report for lag in c["lags"]]
    spans = [c["last"] - c["first"] for c in report if c["count"] > 1]
    per = sum(counts) / len(counts) / (max(spans) if spans else seconds)
    mem = proc_status(jetstream.pid)
    return {
        "k": k,
        "per_consumer": per,
        "total": per * k,
        "p50": pct(lags, 0.5),
        "p99": pct(lags, 0.99),
        "cpu": used / seconds,
        "waited": waited / seconds,
        "per_delivery": used / max(sum(counts), 1),
        "reader_cpu": reader_used / seconds,
        "reader_waited": reader_waited / seconds,
        "rss": mem["VmRSS"],
        "hwm": mem["VmHWM"],
        "errors": sum(c["errors"] for c in report),
    }


def print_table(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    print(f"\nrelay at {args.rate:,.0f} frames/s for {args.seconds:.0f} s; filter {args.filter}")
    print(
        "| consumers | events/s each | events/s in all | lag p50 | lag p99 | CPU (waiting for one)"
        " | CPU per delivery | RSS (peak) | consumers' CPU (waiting for one) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['k']} | {r['per_consumer']:,.0f} | {r['total']:,.0f} | "
            f"{r['p50'] * 1000:.0f} ms | {r['p99'] * 1000:.0f} ms | "
            f"{r['cpu']:.0%} ({r['waited']:.0%}) | {r['per_delivery'] * 1e6:.2f} µs | "
            f"{r['rss']:.0f} MB ({r['hwm']:.0f}) | "
            f"{r['reader_cpu']:.0%} ({r['reader_waited']:.0%}) |"
        )
    print(
        f"goals: {GOAL_PER_CONSUMER:,} events/s to each of 1,000 filtered consumers, "
        f"p99 lag under {GOAL_LAG * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()

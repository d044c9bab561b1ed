"""The relay under load: verified commits ingested per second, deliveries to K consumers, lag.

Run: ./scripts/setup test && .venv/bin/python bench/relay.py [--accounts 3000] [--hosts 4]
     [--plc-latency-ms 50] [--phases 1:full,10:full,100:1000 | --phases cold]
Before any timing it makes (or reuses, cached under the temp dir) validly signed sync 1.1
commits of several thousand did:plc accounts: each repo is pre-filled with records, then every
commit writes 1-3 posts, likes or follows (some deletes) and carries its inversion proof blocks.
It then starts a real PLC (`skyloft plc serve`), registers every account with its upstream as
PDS, starts the upstream PDSes in one child process (websockets servers replaying the frames,
stamping `time` as they send), a real relay (`skyloft relay serve`, RELAY_DEV_MODE) crawling
them, and K consumers in another child process (raw sockets: count frames, time one in eight
from its `time` field). The cold phase comes first, at full speed to one consumer: every
account is new to the relay and sends #identity, #account, #sync, then `--cold-commits`
commits (a relay joining the network, or a PDS with many sign-ups); `--plc-latency-ms` puts a
proxy in front of the PLC that delays each of its answers (a PLC across the internet is
50-200 ms away). Then each phase runs at full speed or at a fixed rate with K = 1, 10, 100.
`--server` picks the relay's ASGI server (SKYLOFT_ASGI_SERVER; uvicorn by default, whose
websocket sends cost about half of hypercorn's). Processes are stopped by pid at the end.

Figures: verified commits/s the relay emitted, frames delivered/s over all consumers, delivery
lag p50/p99 (upstream send -> consumer receive), relay CPU and RSS (VmRSS and VmHWM from /proc,
its verifying workers included); for the cold phase also the relay's CPU per event (and the
main process's share), the time its threads were runnable but waited for a CPU that other work
held (schedstat), and the CPU of the PLC, its proxy, the upstreams and the consumers, to tell
what bounds the figure. Every process shares the machine's cores, upstreams and consumers
included. No peer runs here: indigo's relay needs Go and PostgreSQL; the issue's goal
is printed beside each figure instead.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from atcore.identity.plc import op_cid, sign_operation, update_op  # noqa: E402
from atcore.keys import private_key_from_bytes  # noqa: E402
from bench.relay_traffic import Plan, generate  # noqa: E402
from skyloft.services import ServiceProcess  # noqa: E402

TRAFFIC = Path(__file__).resolve().parent / "relay_traffic.py"
GOAL_INGEST = 5_000
GOAL_COLD = 5_000  # commits/s of the cold phase with a local PLC
GOAL_COLD_FAR = 2_000  # ... with 50 ms added to every PLC answer
GOAL_DELIVERIES = 100_000
GOAL_LAG = 1.0
GOAL_RSS_MB = 500


class Child:
    """A bench/relay_traffic.py (or `script`) child process spoken to in JSON lines."""

    def __init__(self, *args: str, script: Path = TRAFFIC) -> None:
        self.script = script
        self.proc = subprocess.Popen(
            [sys.executable, str(script), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.script.name} {self.proc.args[2]} exited")
        return json.loads(line)  # type: ignore[no-any-return]

    def ask(self, command: str) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self.read()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@contextmanager
def stopping(service: ServiceProcess) -> Any:
    """Stop `service` by pid on exit; it must exit cleanly."""
    try:
        yield service
    finally:
        status = service.stop()
    if status != 0:
        raise RuntimeError(f"{service.service} exited with {status}:\n{service.log_tail()}")


@contextmanager
def child(*args: str, script: Path = TRAFFIC) -> Any:
    c = Child(*args, script=script)
    try:
        yield c
    finally:
        c.stop()


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def runqueue_wait(pid: int) -> float:
    """Seconds the process's threads have spent runnable but waiting for a CPU (schedstat):
    on a shared machine, what other work took from it."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[1])
        except (ProcessLookupError, FileNotFoundError):
            continue  # a thread that ended while the tasks were listed
    return total / 1e9


def proc_status(pid: int) -> dict[str, float]:
    """VmRSS/VmHWM in MB and CPU seconds of a process and its children (the verifying
    workers), from /proc."""
    out = {"VmRSS": 0.0, "VmHWM": 0.0, "cpu": 0.0, "main": 0.0, "waited": 0.0}
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    for each in [pid, *map(int, children)]:
        for line in Path(f"/proc/{each}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                out[name] += int(value.split()[0]) / 1024
        fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        out["cpu"] += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        if each == pid:
            out["main"] = out["cpu"]
        out["waited"] += runqueue_wait(each)
    return out


async def register(plc_url: str, idents: list[dict[str, Any]], ports: list[int]) -> None:
    """Each account's genesis op, then an update pointing it at its upstream (as PDS)."""

    async def one(http: httpx.AsyncClient, ident: dict[str, Any]) -> None:
        did, op = ident["did"], ident["op"]
        rotation = private_key_from_bytes("k256", bytes.fromhex(ident["rotation"]))
        r = await http.post(f"{plc_url}/{did}", json=op)
        r.raise_for_status()
        pds = f"http://localhost:{ports[ident['host']]}"
        update = sign_operation(update_op(op, op_cid(op), pds=pds), rotation)
        r = await http.post(f"{plc_url}/{did}", json=update)
        r.raise_for_status()

    async with httpx.AsyncClient(timeout=60) as http:
        queue = list(idents)

        async def worker() -> None:
            while queue:
                await one(http, queue.pop())

        await asyncio.gather(*(worker() for _ in range(8)))


def metric(url: str, name: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name):
            total += float(line.rsplit(" ", 1)[1])
    return total


def run_phase(
    upstream: Child,
    consumers: Child,
    relay: ServiceProcess,
    k: int,
    per_host: int,
    rate: float,
    hosts: int,
    others: dict[str, int],
) -> dict[str, Any]:
    consumers.ask(f"connect {k}")
    time.sleep(0.5)
    before = proc_status(relay.pid)
    others_before = {name: proc_status(pid)["cpu"] for name, pid in others.items()}
    started = time.time()
    upstream.ask(f"go {per_host} {rate / hosts if rate else 0}")
    expected = per_host * hosts
    deadline = time.time() + 120 + expected / 100
    while time.time() < deadline:
        counts = consumers.ask("count")["counts"]
        if min(counts) >= expected:
            break
        time.sleep(0.2)
    after = proc_status(relay.pid)
    others_cpu = {
        name: proc_status(pid)["cpu"] - others_before[name] for name, pid in others.items()
    }
    report = consumers.ask("report")["consumers"]
    consumers.ask("close")
    time.sleep(0.3)
    first = min(c["first"] for c in report if c["count"])
    last = max(c["last"] for c in report)
    span = max(last - first, 1e-9)
    leader = report[0]
    leader_span = max(leader["last"] - leader["first"], 1e-9)
    lags = [lag for c in report for lag in c["lags"]]
    return {
        "k": k,
        "rate": rate,
        "events": expected,
        "emitted": leader["count"] / leader_span,
        "commits": leader["commits"] / leader_span,
        "delivered": sum(c["count"] for c in report) / span,
        "missing": sum(max(expected - c["count"], 0) for c in report),
        "errors": sum(c["errors"] for c in report),
        "p50": pct(lags, 0.5),
        "p99": pct(lags, 0.99),
        "cpu": (after["cpu"] - before["cpu"]) / max(time.time() - started, 1e-9),
        "cpu_events": (after["cpu"] - before["cpu"]) / expected,
        "main_events": (after["main"] - before["main"]) / expected,
        "waited": (after["waited"] - before["waited"]) / max(time.time() - started, 1e-9),
        "others": {
            name: cpu / max(time.time() - started, 1e-9) for name, cpu in others_cpu.items()
        },
        "rss": after["VmRSS"],
        "hwm": after["VmHWM"],
        "wall": last - started,
    }


def parse_phases(text: str) -> list[tuple[int, float]]:
    """`1:full,100:1000` -> [(1, 0.0), (100, 1000.0)]: consumers and events/s (0 = full);
    `cold` alone: none (only the cold phase runs)."""
    phases: list[tuple[int, float]] = []
    if text == "cold":
        return phases
    for item in text.split(","):
        k, _, rate = item.partition(":")
        phases.append((int(k), 0.0 if rate in ("", "full") else float(rate)))
    return phases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--accounts", type=int, default=3000)
    parser.add_argument("--hosts", type=int, default=4)
    parser.add_argument("--commits", type=int, default=16, help="per account")
    parser.add_argument("--prefill", type=int, default=200, help="records per repo beforehand")
    parser.add_argument("--phases", default="1:full,10:full,100:1000")
    parser.add_argument("--per-phase", type=int, default=3, help="commits per account a phase")
    parser.add_argument("--cold-commits", type=int, default=6, help="per account, cold phase")
    parser.add_argument(
        "--plc-latency-ms", type=float, default=0.0, help="added to every PLC answer the relay gets"
    )
    parser.add_argument("--server", default="uvicorn", help="SKYLOFT_ASGI_SERVER of the relay")
    parser.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "skyloft-bench-relay"))
    args = parser.parse_args()
    phases = parse_phases(args.phases)
    plan = Plan(args.accounts, args.hosts, args.commits, args.prefill, args.cold_commits)
    if args.cold_commits + len(phases) * args.per_phase > args.commits:
        parser.error("--commits must cover the cold phase and every phase")
    print(f"commits for {plan.accounts} accounts on {plan.hosts} hosts ({plan.key})", flush=True)
    folder = generate(plan, Path(args.cache))
    idents = json.loads((folder / "accounts.json").read_text())
    per_round = [len(range(h, plan.accounts, plan.hosts)) for h in range(plan.hosts)]
    if len(set(per_round)) != 1:
        parser.error("--accounts must be a multiple of --hosts")
    round_size = per_round[0]
    with tempfile.TemporaryDirectory(prefix="bench-relay-") as tmp_name:
        tmp = Path(tmp_name)
        plc = ServiceProcess("plc", tmp / "plc")
        plc_url = plc.url
        with (
            stopping(plc),
            child("plc-proxy", plc_url, str(args.plc_latency_ms)) as plc_proxy,
            child("upstream", str(folder), str(plan.hosts)) as upstream,
        ):
            relay_plc = plc_proxy.read()["url"] if args.plc_latency_ms else plc_url
            ports = upstream.read()["ports"]
            started = time.perf_counter()
            asyncio.run(register(plc_url, idents, ports))
            print(f"registered {len(idents)} DIDs in {time.perf_counter() - started:.1f} s")
            env = {
                "RELAY_DEV_MODE": "true",
                "RELAY_PLC_HOST": relay_plc,
                "RELAY_HOSTS": ",".join(f"localhost:{p}" for p in ports),
                "RELAY_DEFAULT_ACCOUNT_LIMIT": "10000000",
                "SKYLOFT_ASGI_SERVER": args.server,
            }
            relay = ServiceProcess("relay", tmp / "relay", env=env, timeout=60)
            try:
                with child("consumers", relay.url) as consumers:
                    others = {
                        "PLC": plc.pid,
                        "PLC proxy": plc_proxy.proc.pid,
                        "upstreams": upstream.proc.pid,
                        "consumers": consumers.proc.pid,
                    }
                    if not args.plc_latency_ms:
                        del others["PLC proxy"]
                    rows = run_all(
                        relay, upstream, consumers, phases, round_size, args, plan, others
                    )
                rejected = metric(relay.url, "relay_events_rejected_total")
            finally:
                status = relay.stop()
            if status != 0:
                print(relay.log_tail())
    print_table(rows, plan, rejected, args)


def run_all(
    relay: ServiceProcess,
    upstream: Child,
    consumers: Child,
    phases: list[tuple[int, float]],
    round_size: int,
    args: argparse.Namespace,
    plan: Plan,
    others: dict[str, int],
) -> list[dict[str, Any]]:
    cold = run_phase(
        upstream, consumers, relay, 1, round_size * plan.cold_events, 0.0, plan.hosts, others
    )
    cold["phase"] = "cold"
    elsewhere = ", ".join(f"{name} {cpu:.2f}" for name, cpu in cold["others"].items())
    print(
        f"cold: {plan.accounts} new accounts, {cold['commits']:.0f} commits/s "
        f"({cold['emitted']:.0f} events/s), PLC +{args.plc_latency_ms:.0f} ms, "
        f"lag p50 {cold['p50'] * 1000:.0f} ms p99 {cold['p99'] * 1000:.0f} ms, "
        f"relay CPU {cold['cpu']:.2f} cores ({cold['cpu_events'] * 1e6:.0f} µs per event, "
        f"{cold['main_events'] * 1e6:.0f} of them in the main process; runnable but waiting "
        f"for a CPU held by other work: {cold['waited']:.2f} s/s), "
        f"other processes' CPU (cores): {elsewhere}, missing {cold['missing']}",
        flush=True,
    )
    rows = [cold]
    for k, rate in phases:
        per_host = round_size * args.per_phase
        row = run_phase(upstream, consumers, relay, k, per_host, rate, plan.hosts, others)
        print(
            f"K={k} rate={'full' if not rate else rate}: {row['emitted']:.0f} commits/s, "
            f"{row['delivered']:.0f} deliveries/s, lag p50 {row['p50'] * 1000:.0f} ms "
            f"p99 {row['p99'] * 1000:.0f} ms, relay CPU {row['cpu']:.2f} cores, "
            f"RSS {row['rss']:.0f} MB, missing {row['missing']}, error frames {row['errors']}",
            flush=True,
        )
        rows.append(row)
    return rows


def print_table(
    rows: list[dict[str, Any]], plan: Plan, rejected: float, args: argparse.Namespace
) -> None:
    print()
    print(
        f"Relay (served by {args.server}), {plan.accounts} accounts on {plan.hosts} upstreams, "
        f"repos of {plan.prefill}+ "
        f"records, 1-3 ops per commit; {os.cpu_count()} cores shared by relay, upstreams and "
        f"consumers; PLC answers delayed {args.plc_latency_ms:.0f} ms; "
        f"rejected events: {rejected:.0f}"
    )
    print()
    print(
        "| phase | consumers | upstream rate | verified commits/s | deliveries/s (all consumers) "
        "| lag p50 | lag p99 | relay CPU (cores) | relay RSS (peak) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        rate = "full speed" if not r["rate"] else f"{r['rate']:.0f}/s"
        phase = r.get("phase", "warm")
        ingest_goal = f" (goal ≥ {GOAL_INGEST:,})" if r["k"] == 1 and not r["rate"] else ""
        if phase == "cold":
            goal = GOAL_COLD if not args.plc_latency_ms else GOAL_COLD_FAR
            ingest_goal = f" (goal ≥ {goal:,})"
        deliver_goal = f" (goal ≥ {GOAL_DELIVERIES:,})" if r["k"] == 100 else ""
        lag_goal = f" (goal < {GOAL_LAG * 1000:.0f} ms)" if r["k"] == 100 else ""
        missing = f", {r['missing']} missing" if r["missing"] else ""
        print(
            f"| {phase} | {r['k']} | {rate} | {r['commits']:,.0f}{ingest_goal} "
            f"| {r['delivered']:,.0f}{deliver_goal}{missing} | {r['p50'] * 1000:.0f} ms "
            f"| {r['p99'] * 1000:.0f} ms{lag_goal} | {r['cpu']:.2f} "
            f"| {r['rss']:.0f} MB ({r['hwm']:.0f}; goal < {GOAL_RSS_MB}) |"
        )


if __name__ == "__main__":
    main()

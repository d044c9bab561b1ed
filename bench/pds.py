"""The PDS under load, side by side with the reference TypeScript PDS in the same run.

Run: ./scripts/setup test && .venv/bin/python bench/pds.py [--writes 1000] [--repo-records 10000]
Starts our PLC and PDS (`skyloft plc serve`, `skyloft pds serve`, stopped by pid at the end)
and the reference PDS (npm `@atproto/pds` 0.4 in `@atproto/dev-env`'s TestNetworkNoAppView,
its default SQLite storage; installed on demand into bench/js with `npm ci`), creates the bench
account and MANY_ACCOUNTS more on each, and drives all with the same client (raw XRPC with the
session JWTs, timed calls over plain kept-alive HTTP/1.1 connections, see `Http11`):
createRecord at concurrency 1 and 8 on the bench account, and to the MANY_ACCOUNTS accounts in
turn with MANY_IN_FLIGHT requests in flight (each to another account, so no group commit
helps). For each: records/s, p50/p99 latency, the server process's CPU per write (user + system
time of its pid, every thread, from /proc, over the timed writes only, a firehose subscriber
connected), and the firehose delay (request sent -> #commit received, and response received ->
#commit received, matched by commit CID). Then getRecord and listRecords throughput, and getRepo
of a 10k-record repo (MB/s). Our PDS is measured once per ASGI server given with `--servers`
(default: uvicorn and hypercorn). Phases alternate between the servers so
all see the same machine load. Prints a Markdown table with ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from atcore.frames import CommitEvent, decode_frame  # noqa: E402
from runtime.serve import SERVERS  # noqa: E402
from skyloft.services import ServiceProcess  # noqa: E402
from tests.servers import running_service  # noqa: E402

JS_DIR = Path(__file__).resolve().parent / "js"
POST = "app.bsky.feed.post"
PASSWORD = "bench-password"
WARM_UP = 50  # writes before each timed createRecord run
MANY_ACCOUNTS = 50
MANY_IN_FLIGHT = 16
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` so far, all its threads (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


class Http11:
    """The timed calls' client: plain HTTP/1.1 over `size` kept-alive connections.

    httpx spends ~1 ms of CPU per call here, as much as the server being measured; sharing two
    cores with it, the client would cap what a fast server can show. This one writes the
    request bytes and reads the response by Content-Length (or chunks), nothing else.
    """

    def __init__(self, url: str, token: str, size: int) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.host_line = f"Host: {parts.netloc}\r\n"
        self.token = token
        self.size = size
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.opened: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> Http11:
        for _ in range(self.size):
            reader, writer = await asyncio.open_connection(self.host, self.port)
            self.idle.append((reader, writer))
            self.opened.append(writer)
        return self

    async def __aexit__(self, *exc: object) -> None:
        for writer in self.opened:
            writer.close()

    def _head(self, token: str | None) -> str:
        return f"{self.host_line}Authorization: Bearer {token or self.token}\r\n"

    async def get(self, path: str, params: dict[str, Any]) -> tuple[int, bytes]:
        head = self._head(None)
        return await self._call(f"GET {path}?{urlencode(params)} HTTP/1.1\r\n{head}\r\n")

    async def post(self, path: str, body: Any, token: str | None = None) -> tuple[int, bytes]:
        """POST `body` as JSON, with `token` (else the client's) as the bearer token."""
        data = json.dumps(body).encode()
        head = f"POST {path} HTTP/1.1\r\n{self._head(token)}Content-Type: application/json\r\n"
        return await self._call(f"{head}Content-Length: {len(data)}\r\n\r\n", data)

    async def _call(self, head: str, body: bytes = b"") -> tuple[int, bytes]:
        reader, writer = self.idle.pop()
        writer.write(head.encode() + body)
        lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = dict(line.lower().split(": ", 1) for line in lines[1:] if line)
        if "content-length" in headers:
            data = await reader.readexactly(int(headers["content-length"]))
        else:  # chunked
            chunks = []
            while size := int((await reader.readuntil(b"\r\n"))[:-2], 16):
                chunks.append((await reader.readexactly(size + 2))[:-2])
            await reader.readuntil(b"\r\n")
            data = b"".join(chunks)
        self.idle.append((reader, writer))
        return status, data

    @staticmethod
    def ok(status: int, data: bytes) -> Any:
        if status != 200:
            raise RuntimeError(f"HTTP {status}: {data[:300]!r}")
        return json.loads(data)


@dataclass
class Target:
    name: str
    url: str
    did: str
    token: str
    pid: int
    rkeys: list[str] = field(default_factory=list)
    # (did, access token) of the accounts the many-account run writes to
    accounts: list[tuple[str, str]] = field(default_factory=list)

    def client(self, concurrency: int) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.url,
            headers={"authorization": f"Bearer {self.token}"},
            limits=httpx.Limits(max_connections=concurrency),
            timeout=120,
        )

    def raw(self, concurrency: int) -> Http11:
        return Http11(self.url, self.token, concurrency)


def post(text: str) -> dict[str, Any]:
    return {"$type": POST, "text": text, "createdAt": "2024-05-01T12:00:00.000Z"}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def bounded(
    jobs: list[Callable[[], Awaitable[float]]], concurrency: int
) -> tuple[float, list[float]]:
    """Run jobs with at most `concurrency` in flight; (wall seconds, each job's latency)."""
    queue = list(reversed(jobs))
    latencies: list[float] = []

    async def worker() -> None:
        while queue:
            latencies.append(await queue.pop()())

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - start, latencies


class Firehose:
    """A live subscriber noting when each #commit of some repos arrives (by commit CID)."""

    def __init__(self, target: Target, dids: set[str]) -> None:
        ws_url = target.url.replace("http", "ws", 1)
        self.url = f"{ws_url}/xrpc/com.atproto.sync.subscribeRepos"
        self.dids = dids
        self.seen: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def __aenter__(self) -> Firehose:
        self._task = asyncio.create_task(self._listen())
        await asyncio.wait_for(self._ready.wait(), 10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass

    async def _listen(self) -> None:
        # Like relays (and the reference's server), no permessage-deflate.
        async with websockets.connect(self.url, max_size=None, compression=None) as ws:
            self._ready.set()
            async for frame in ws:
                now = time.perf_counter()
                assert isinstance(frame, bytes)
                event = decode_frame(frame)
                if isinstance(event, CommitEvent) and event.repo in self.dids:
                    self.seen[event.commit.encode()] = now

    async def wait_for(self, cids: set[str], timeout: float = 5.0) -> None:
        deadline = time.perf_counter() + timeout
        while not cids <= self.seen.keys() and time.perf_counter() < deadline:
            await asyncio.sleep(0.01)


async def create_records(
    target: Target, concurrency: int, count: int, many: bool = False
) -> dict[str, float]:
    """createRecord throughput, latency and server CPU per write, and the firehose delay of each
    write; to the one bench account, or (`many`) to each of target.accounts in turn."""
    sent: list[tuple[float, float, str]] = []
    accounts = target.accounts if many else [(target.did, target.token)]
    dids = {did for did, _ in accounts}
    async with target.raw(concurrency) as http, Firehose(target, dids) as hose:

        def job(i: int) -> Callable[[], Awaitable[float]]:
            async def run() -> float:
                did, token = accounts[i % len(accounts)]
                body = {"repo": did, "collection": POST, "record": post(f"c{concurrency} {i}")}
                start = time.perf_counter()
                answer = await http.post("/xrpc/com.atproto.repo.createRecord", body, token)
                end = time.perf_counter()
                out = http.ok(*answer)
                if did == target.did:
                    target.rkeys.append(out["uri"].rsplit("/", 1)[1])
                sent.append((start, end, out["commit"]["cid"]))
                return end - start

            return run

        for i in range(WARM_UP):  # connections, caches, the reference's JIT
            await job(-1 - i)()
        sent.clear()
        cpu_before = cpu_seconds(target.pid)
        wall, latencies = await bounded([job(i) for i in range(count)], concurrency)
        cpu = cpu_seconds(target.pid) - cpu_before
        await hose.wait_for({cid for _, _, cid in sent})
    arrived = [(hose.seen[cid], start, end) for start, end, cid in sent if cid in hose.seen]
    if len(arrived) < len(sent):
        print(f"  {target.name}: {len(sent) - len(arrived)} commits never seen on the firehose")
    from_request = [t - start for t, start, _ in arrived]
    from_response = [t - end for t, _, end in arrived]
    return {
        "rate": count / wall,
        "cpu": cpu / count,
        "p50": pct(latencies, 0.5),
        "p99": pct(latencies, 0.99),
        "event_p50": pct(from_request, 0.5),
        "event_p99": pct(from_request, 0.99),
        "after_p50": pct(from_response, 0.5),
        "after_p99": pct(from_response, 0.99),
    }


async def read_records(target: Target, count: int, concurrency: int = 8) -> dict[str, float]:
    rkeys = target.rkeys
    async with target.raw(concurrency) as http:

        def get(i: int) -> Callable[[], Awaitable[float]]:
            async def run() -> float:
                params = {"repo": target.did, "collection": POST, "rkey": rkeys[i % len(rkeys)]}
                start = time.perf_counter()
                answer = await http.get("/xrpc/com.atproto.repo.getRecord", params)
                end = time.perf_counter()
                http.ok(*answer)
                return end - start

            return run

        def page(i: int) -> Callable[[], Awaitable[float]]:
            async def run() -> float:
                params: dict[str, Any] = {"repo": target.did, "collection": POST, "limit": 100}
                if i % 2:
                    params["cursor"] = rkeys[i % len(rkeys)]
                start = time.perf_counter()
                answer = await http.get("/xrpc/com.atproto.repo.listRecords", params)
                end = time.perf_counter()
                http.ok(*answer)
                return end - start

            return run

        gets, get_lat = await bounded([get(i) for i in range(count)], concurrency)
        pages = max(1, count // 10)
        lists, list_lat = await bounded([page(i) for i in range(pages)], concurrency)
    return {
        "get_rate": count / gets,
        "get_p99": pct(get_lat, 0.99),
        "list_rate": pages / lists,
        "list_p99": pct(list_lat, 0.99),
    }


async def fill_repo(target: Target, total: int) -> None:
    """Top the repo up to `total` records with applyWrites batches of 200."""
    async with target.client(4) as http:
        have = len(target.rkeys)
        while have < total:
            n = min(200, total - have)
            writes = [
                {
                    "$type": "com.atproto.repo.applyWrites#create",
                    "collection": POST,
                    "value": post(f"fill {have + i}"),
                }
                for i in range(n)
            ]
            r = await http.post(
                "/xrpc/com.atproto.repo.applyWrites", json={"repo": target.did, "writes": writes}
            )
            r.raise_for_status()
            have += n


async def get_repo(target: Target, repeat: int = 3) -> dict[str, float]:
    async with target.client(1) as http:
        times, size = [], 0
        for _ in range(repeat):
            start = time.perf_counter()
            r = await http.get("/xrpc/com.atproto.sync.getRepo", params={"did": target.did})
            r.raise_for_status()
            times.append(time.perf_counter() - start)
            size = len(r.content)
    best = statistics.median(times)
    return {"repo_mb": size / 1e6, "repo_mbps": size / 1e6 / best, "repo_s": best}


async def create_accounts(url: str, names: list[str]) -> list[tuple[str, str]]:
    """Create an account `<name>.test` for each name; their (did, access token)."""
    made = []
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        for name in names:
            body = {"handle": f"{name}.test", "email": f"{name}@example.com", "password": PASSWORD}
            r = await http.post("/xrpc/com.atproto.server.createAccount", json=body)
            r.raise_for_status()
            made.append((r.json()["did"], r.json()["accessJwt"]))
    return made


def add_many_accounts(target: Target) -> Target:
    names = [f"many{i}" for i in range(MANY_ACCOUNTS)]
    target.accounts = asyncio.run(create_accounts(target.url, names))
    return target


@contextmanager
def ours(tmp: Path, servers: list[str]) -> Iterator[list[Target]]:
    """One PLC, and one PDS (with its bench account) served by each ASGI server named."""
    with running_service("plc", tmp / "plc") as plc_url, ExitStack() as stack:
        targets = []
        for server in servers:
            env = {
                "PDS_DEV_MODE": "true",
                "PDS_HOSTNAME": "localhost",
                "PDS_DID_PLC_URL": plc_url,
                "SKYLOFT_ASGI_SERVER": server,
            }
            pds = ServiceProcess("pds", tmp / f"pds-{server}", env=env)
            stack.callback(pds.stop)
            name = "skyloft" if len(servers) == 1 else f"skyloft ({server})"
            [(did, token)] = asyncio.run(create_accounts(pds.url, ["bench"]))
            targets.append(add_many_accounts(Target(name, pds.url, did, token, pds.pid)))
        yield targets


def install_reference() -> str | None:
    """Install bench/js if needed; None when ready, else why it cannot run here."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        return "node/npm not found on PATH"
    if (JS_DIR / "node_modules" / "@atproto" / "dev-env").is_dir():
        return None
    # better-sqlite3 builds from source; node-gyp takes the headers of the Node running it.
    env = {**os.environ, "npm_config_nodedir": str(Path(os.path.realpath(node)).parent.parent)}
    print("installing the reference PDS (npm ci in bench/js) ...", flush=True)
    done = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--prefix", str(JS_DIR)],
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        return f"npm ci failed ({done.returncode}): {done.stderr.strip()[-2000:]}"
    return None


@contextmanager
def reference() -> Iterator[Target]:
    process = subprocess.Popen(
        ["node", "reference_pds.mjs"],
        cwd=JS_DIR,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            assert process.stderr is not None
            raise RuntimeError(f"the reference PDS did not start: {process.stderr.read()[-2000:]}")
        info = json.loads(line)
        target = Target("reference", info["url"], info["did"], info["accessJwt"], process.pid)
        yield add_many_accounts(target)
    finally:
        if process.stdin is not None:
            process.stdin.close()  # it shuts down when stdin closes
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


ROWS: list[tuple[str, str, str, bool]] = [
    # (label, key, unit, higher is better)
    ("createRecord c=1", "c1.rate", "records/s", True),
    ("createRecord c=1 server CPU", "c1.cpu", "ms/write", False),
    ("createRecord c=1 p50", "c1.p50", "ms", False),
    ("createRecord c=1 p99", "c1.p99", "ms", False),
    ("createRecord c=8", "c8.rate", "records/s", True),
    ("createRecord c=8 p50", "c8.p50", "ms", False),
    ("createRecord c=8 p99", "c8.p99", "ms", False),
    ("createRecord c=8 server CPU", "c8.cpu", "ms/write", False),
    (f"createRecord, {MANY_ACCOUNTS} accounts, c={MANY_IN_FLIGHT}", "many.rate", "records/s", True),
    ("  … p50", "many.p50", "ms", False),
    ("  … p99", "many.p99", "ms", False),
    ("  … server CPU", "many.cpu", "ms/write", False),
    ("request -> #commit, c=1, p50", "c1.event_p50", "ms", False),
    ("request -> #commit, c=1, p99", "c1.event_p99", "ms", False),
    ("response -> #commit, c=1, p50", "c1.after_p50", "ms", False),
    ("response -> #commit, c=1, p99", "c1.after_p99", "ms", False),
    ("request -> #commit, c=8, p50", "c8.event_p50", "ms", False),
    ("request -> #commit, c=8, p99", "c8.event_p99", "ms", False),
    ("response -> #commit, c=8, p50", "c8.after_p50", "ms", False),
    ("response -> #commit, c=8, p99", "c8.after_p99", "ms", False),
    ("getRecord (c=8)", "read.get_rate", "req/s", True),
    ("getRecord p99", "read.get_p99", "ms", False),
    ("listRecords, 100/page (c=8)", "read.list_rate", "req/s", True),
    ("listRecords p99", "read.list_p99", "ms", False),
    ("getRepo, 10k records", "repo.repo_mbps", "MB/s", True),
    ("getRepo CAR size", "repo.repo_mb", "MB", False),
]


def show(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "ms/write":
        return f"{value * 1000:.2f}"
    if unit == "ms":
        return f"{value * 1000:.1f}"
    return f"{value:.2f}" if unit in ("MB", "MB/s") else f"{value:.0f}"


def table(results: dict[str, dict[str, float]], names: list[str]) -> str:
    """The Markdown table; with the reference measured, each of ours' advantage over it."""
    ours_names = [n for n in names if n != "reference"]
    compared = ours_names if "reference" in names else []
    head = "| metric | unit | " + " | ".join(names)
    head += "".join(f" | {n} advantage" for n in compared)
    lines = [head + " |", "|" + "---|" * (len(names) + 2 + len(compared))]
    for label, key, unit, higher in ROWS:
        cells = [show(results[n].get(key), unit) for n in names]
        ref_v = results["reference"].get(key) if compared else None
        for name in compared:
            ours_v, ratio = results[name].get(key), "—"
            if ours_v and ref_v and ours_v > 0 and ref_v > 0 and key != "repo.repo_mb":
                ratio = f"{(ours_v / ref_v) if higher else (ref_v / ours_v):.1f}x"
            cells.append(ratio)
        lines.append(f"| {label} | {unit} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def flatten(prefix: str, values: dict[str, float]) -> dict[str, float]:
    return {f"{prefix}.{k}": v for k, v in values.items()}


async def measure(targets: list[Target], args: argparse.Namespace) -> dict[str, dict[str, float]]:
    results: dict[str, dict[str, float]] = {t.name: {} for t in targets}

    async def phase(label: str, fn: Callable[[Target], Awaitable[dict[str, float]]]) -> None:
        for target in targets:
            print(f"  {label}: {target.name} ...", flush=True)
            results[target.name].update(flatten(label, await fn(target)))

    await phase("c1", lambda t: create_records(t, 1, args.writes // 2))
    await phase("c8", lambda t: create_records(t, 8, args.writes))
    await phase("many", lambda t: create_records(t, MANY_IN_FLIGHT, args.writes, many=True))
    await phase("read", lambda t: read_records(t, args.reads))
    for target in targets:
        print(f"  filling {target.name} to {args.repo_records} records ...", flush=True)
        await fill_repo(target, args.repo_records)
    await phase("repo", get_repo)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=1000, help="createRecord calls at c=8")
    parser.add_argument("--reads", type=int, default=2000, help="getRecord calls")
    parser.add_argument("--repo-records", type=int, default=10_000)
    parser.add_argument("--no-reference", action="store_true", help="measure only skyloft")
    parser.add_argument(
        "--servers",
        nargs="+",
        choices=SERVERS,
        default=["uvicorn", "hypercorn"],
        help="ASGI servers to serve our PDS with, each measured (SKYLOFT_ASGI_SERVER)",
    )
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f} (cores: {os.cpu_count()})")
    why_not = "--no-reference given" if args.no_reference else install_reference()
    with tempfile.TemporaryDirectory() as tmp, ours(Path(tmp), args.servers) as targets:
        names = [t.name for t in targets]
        if why_not is None:
            with reference() as ref:
                results = asyncio.run(measure([*targets, ref], args))
            names.append("reference")
        else:
            print(f"reference PDS not measured: {why_not}")
            results = asyncio.run(measure(targets, args))
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print()
    print(table(results, names))


if __name__ == "__main__":
    main()

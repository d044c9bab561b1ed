"""Time `skyloft account migrate` between two local PDSes, and the share of each step.

Run: ./scripts/setup test && .venv/bin/python bench/migrate.py [--records 10000] [--blobs 1000]
[--blob-kb 100] [--client aiohttp|httpx]
Starts our PLC and two PDSes (`skyloft plc serve`, `skyloft pds serve`, stopped by pid at the
end), fills an account on the first (one post per blob, each with its image, then plain posts
up to `--records`, in applyWrites batches), then runs the migration's own code in this process
to the second PDS, reading the PLC code from the old PDS's development mail log (the PDS calls
go over aiohttp, as the command's do, or over httpx with `--client httpx`). Prints the
total, each step's seconds and share, the blob copy rate (MB/s), and the CPU time the client
and each PDS spent. The goal of issue 13: 10,000 records and 1,000 blobs (100 MB) in under
30 s, the blob copy at 50 MB/s or more.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from atcore.xrpc.client import http_session  # noqa: E402
from skyloft.account.migrate import Plan, migrate  # noqa: E402
from skyloft.account.state import STEPS  # noqa: E402
from skyloft.services import ServiceProcess  # noqa: E402
from tests.servers import running_service  # noqa: E402

PASSWORD = "bench-password"
POST = "app.bsky.feed.post"
NOW = "2024-05-01T12:00:00.000Z"
PNG = b"\x89PNG\r\n\x1a\n"


class BenchPrompts:
    """Passwords, the PLC code from the old PDS's log, and when each step finished: the wall
    clock and the CPU seconds used so far by this process and each PDS."""

    def __init__(self, old_log: Path, pids: list[int]) -> None:
        self.old_log = old_log
        self.mail_start = len(old_log.read_text())
        self.pids = pids
        self.finished: dict[str, float] = {}
        self.cpu: dict[str, list[float]] = {}
        self.waiting = 0.0

    def old_password(self) -> str:
        return PASSWORD

    def new_password(self) -> str:
        return PASSWORD

    def plc_token(self) -> str | None:
        started = time.perf_counter()
        while True:
            codes = re.findall(r"Your code: (\S+)", self.old_log.read_text()[self.mail_start :])
            if codes:
                self.waiting += time.perf_counter() - started
                return str(codes[-1])
            time.sleep(0.01)

    def clocks(self) -> tuple[float, list[float]]:
        cpu = [time.process_time()] + [cpu_seconds(pid) for pid in self.pids]
        return time.perf_counter(), cpu

    def say(self, text: str) -> None:
        if text.startswith("done: "):
            step = text.removeprefix("done: ")
            self.finished[step], self.cpu[step] = self.clocks()


async def fill(url: str, records: int, blobs: int, blob_size: int) -> str:
    """An account with `blobs` image posts and plain posts up to `records`; its DID."""
    async with httpx.AsyncClient(base_url=url, timeout=120) as http:
        body = {"handle": "mover.test", "email": "mover@example.com", "password": PASSWORD}
        made = (await http.post("/xrpc/com.atproto.server.createAccount", json=body)).json()
        did, auth = made["did"], {"authorization": f"Bearer {made['accessJwt']}"}
        refs: list[dict[str, Any]] = []

        async def upload(n: int) -> None:
            data = PNG + n.to_bytes(4, "big") + os.urandom(blob_size - len(PNG) - 4)
            headers = {**auth, "content-type": "image/png"}
            r = await http.post("/xrpc/com.atproto.repo.uploadBlob", content=data, headers=headers)
            r.raise_for_status()
            refs.append(r.json()["blob"])

        for start in range(0, blobs, 8):
            await asyncio.gather(*(upload(n) for n in range(start, min(start + 8, blobs))))
        values = [
            {
                "$type": POST,
                "text": "picture",
                "createdAt": NOW,
                "embed": {"$type": "app.bsky.embed.images", "images": [{"alt": "", "image": r}]},
            }
            for r in refs
        ]
        values += [
            {"$type": POST, "text": f"post {n}", "createdAt": NOW}
            for n in range(max(records - len(values), 0))
        ]
        for start in range(0, len(values), 200):
            writes = [
                {"$type": "com.atproto.repo.applyWrites#create", "collection": POST, "value": v}
                for v in values[start : start + 200]
            ]
            r = await http.post(
                "/xrpc/com.atproto.repo.applyWrites",
                json={"repo": did, "writes": writes},
                headers=auth,
            )
            r.raise_for_status()
    return str(did)


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(
    plc_url: str,
    old: ServiceProcess,
    new: ServiceProcess,
    did: str,
    blobs: int,
    blob_size: int,
    client: str,
) -> None:
    prompts = BenchPrompts(old.log_path, [old.pid, new.pid])
    state = old.log_path.parent / "state.json"
    plan = Plan(source=did, new_pds=new.url, plc_url=plc_url, state_path=state)
    async with httpx.AsyncClient(timeout=300) as http, http_session() as session:
        pds_http = session if client == "aiohttp" else http
        started, start_cpu = prompts.clocks()
        await migrate(plan, prompts, http, pds_http)
        total = time.perf_counter() - started
    print("| step | seconds | share | CPU s: client | old PDS | new PDS |")
    print("|---|---:|---:|---:|---:|---:|")
    previous, previous_cpu = started, start_cpu
    for step in STEPS:
        seconds = prompts.finished[step] - previous
        cells = " | ".join(f"{cpu:.2f}" for cpu in spent(prompts.cpu[step], previous_cpu))
        previous, previous_cpu = prompts.finished[step], prompts.cpu[step]
        print(f"| {step} | {seconds:.2f} | {100 * seconds / total:.0f}% | {cells} |")
    cells = " | ".join(f"{cpu:.2f}" for cpu in spent(previous_cpu, start_cpu))
    print(f"| **total** | **{total:.2f}** | | {cells} |")
    print(f"(the identity step includes {prompts.waiting:.2f} s waiting for the mailed code)")
    blob_seconds = prompts.finished["blobs"] - prompts.finished["repo"]
    rate = blobs * blob_size / 1e6 / blob_seconds
    per_blob = spent(prompts.cpu["blobs"], prompts.cpu["repo"])
    print(f"blob copy: {rate:.1f} MB/s (PDS calls over {client}); CPU per blob: client", end="")
    print(
        " {:.2f} ms, old PDS {:.2f} ms, new PDS {:.2f} ms".format(
            *(1000 * c / blobs for c in per_blob)
        )
    )


def spent(later: list[float], earlier: list[float]) -> list[float]:
    return [now - then for now, then in zip(later, earlier, strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--blobs", type=int, default=1000)
    parser.add_argument("--blob-kb", type=int, default=100)
    parser.add_argument("--client", choices=("aiohttp", "httpx"), default="aiohttp")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f} (cores: {os.cpu_count()})")
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        root = Path(tmp)
        plc_url = stack.enter_context(running_service("plc", root / "plc"))
        env = {"PDS_DEV_MODE": "true", "PDS_HOSTNAME": "localhost", "PDS_DID_PLC_URL": plc_url}
        old = ServiceProcess("pds", root / "old", env=env)
        stack.callback(old.stop)
        new = ServiceProcess("pds", root / "new", env=env)
        stack.callback(new.stop)
        started = time.perf_counter()
        did = asyncio.run(fill(old.url, args.records, args.blobs, args.blob_kb * 1000))
        print(f"filled {args.records} records, {args.blobs} blobs of {args.blob_kb} kB", end="")
        print(f" in {time.perf_counter() - started:.1f} s")
        size = args.blob_kb * 1000
        asyncio.run(measure(plc_url, old, new, did, args.blobs, size, args.client))
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

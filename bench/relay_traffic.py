"""Traffic for bench/relay.py: signed sync 1.1 commits made ahead of time, the upstream PDSes
that replay them, the cheap firehose consumers that count what the relay delivers, and a proxy
that delays every PLC answer.

Run by bench/relay.py, never by hand: `relay_traffic.py upstream <cache> <hosts>`,
`relay_traffic.py consumers <relay-url>` and `relay_traffic.py plc-proxy <plc-url> <ms>` are
child processes driven by lines on stdin (the proxy prints its port and runs until stopped).

Each host's stream starts with the cold round: for every account of the host in turn (never
seen by the relay), its #identity, #account and #sync (of the repo's prefilled head), then its
first `cold` commits. Later rounds send one commit of every account each, in a shuffled order.
"""

from __future__ import annotations

import asyncio
import base64
import json
import multiprocessing
import os
import random
import struct
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from atcore import cbor  # noqa: E402
from atcore.blockstore import MemoryBlockStore  # noqa: E402
from atcore.cid import cid_for_cbor  # noqa: E402
from atcore.commit import create_commit  # noqa: E402
from atcore.frames import AccountEvent, IdentityEvent, encode_frame  # noqa: E402
from atcore.identity.plc import did_for_genesis, genesis_op, sign_operation  # noqa: E402
from atcore.keys import generate_k256  # noqa: E402
from atcore.mst import tree  # noqa: E402
from atcore.repo import RepoHead  # noqa: E402
from atcore.syntax.did import Did  # noqa: E402
from atcore.syntax.tid import TidClock  # noqa: E402
from tests.relay.fake_pds import FakeAccount  # noqa: E402

# Every frame carries this `time`; upstreams overwrite it with the moment they send the frame.
PLACEHOLDER_TIME = "2025-01-01T00:00:00.000Z"
TIME_KEY = b"dtime\x78\x18"  # CBOR text "time", then a 24-byte text header
PLACEHOLDER_PDS = "http://localhost:1"  # replaced at the PLC by an update op at run time
WORDS = (
    "the a relay firehose commit verify sky loft network post like follow python rust go data "
    "repo merkle tree signature key event stream window cursor consumer host account feed"
).split()
SAMPLE_EVERY = 8  # consumers time one frame in this many
COMMIT_HEADER = cbor.encode({"op": 1, "t": "#commit"})


@dataclass(frozen=True)
class Plan:
    accounts: int
    hosts: int
    commits: int  # per account, after the prefill
    prefill: int  # records in each repo before the first relayed commit
    cold: int = 6  # commits of each account in the cold round, after #identity #account #sync
    seed: int = 1

    @property
    def key(self) -> str:
        return (
            f"v2-a{self.accounts}-h{self.hosts}-c{self.commits}-p{self.prefill}-k{self.cold}"
            f"-s{self.seed}"
        )

    @property
    def cold_events(self) -> int:
        """Frames of one account in the cold round."""
        return 3 + self.cold


def _text(rng: random.Random) -> str:
    n = rng.choice((3, 8, 15, 30, 45))
    return " ".join(rng.choice(WORDS) for _ in range(n))[:300]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _record(rng: random.Random, kind: str, dids: list[str], at: str) -> dict[str, Any]:
    target = rng.choice(dids)
    ref = {
        "uri": f"at://{target}/app.bsky.feed.post/3l{rng.randrange(10**10):010d}",
        "cid": cid_for_cbor(cbor.encode({"n": rng.random().hex()})).encode(),
    }
    if kind == "app.bsky.feed.like":
        return {"$type": kind, "subject": ref, "createdAt": at}
    if kind == "app.bsky.graph.follow":
        return {"$type": kind, "subject": target, "createdAt": at}
    post: dict[str, Any] = {"$type": kind, "text": _text(rng), "createdAt": at, "langs": ["en"]}
    if rng.random() < 0.3:
        post["reply"] = {"root": ref, "parent": ref}
    return post


def _writes(
    rng: random.Random, account: FakeAccount, paths: list[str], dids: list[str], at: str
) -> dict[str, dict[str, Any] | None]:
    writes: dict[str, dict[str, Any] | None] = {}
    committed = len(paths)  # only records of earlier commits can be deleted
    for _ in range(rng.choices((1, 2, 3), (70, 20, 10))[0]):
        roll = rng.random()
        if roll < 0.05 and committed:
            committed -= 1
            writes[paths.pop(rng.randrange(committed + 1))] = None
            continue
        kind = (
            "app.bsky.feed.like"
            if roll < 0.5
            else "app.bsky.feed.post"
            if roll < 0.85
            else "app.bsky.graph.follow"
        )
        path = f"{kind}/{account.clock.next()}"
        writes[path] = _record(rng, kind, dids, at)
        paths.append(path)
    return writes


def _make_account(plan: Plan, index: int) -> tuple[FakeAccount, list[str]]:
    rng = random.Random(plan.seed * 1_000_003 + index)
    key, rotation = generate_k256(), generate_k256()
    op = sign_operation(
        genesis_op(
            signing_key=key.public_key().did_key(),
            rotation_keys=[rotation.public_key().did_key()],
            handle=f"u{index}.bench.test",
            pds=PLACEHOLDER_PDS,
        ),
        rotation,
    )
    did = Did(did_for_genesis(op))
    store = MemoryBlockStore()
    clock = TidClock()
    paths: list[str] = []
    writes: list[tuple[str, Any]] = []
    for _ in range(plan.prefill):
        kind = rng.choice(("app.bsky.feed.like", "app.bsky.feed.post", "app.bsky.graph.follow"))
        path = f"{kind}/{clock.next()}"
        block = cbor.encode(_record(rng, kind, [did], PLACEHOLDER_TIME))
        cid = cid_for_cbor(block)
        store.put(cid, block)
        writes.append((path, cid))
        paths.append(path)
    data = tree.apply(store, tree.empty_root(store), writes)
    commit, block, cid = create_commit(did, data, clock.next(), key)
    store.put(cid, block)
    account = FakeAccount(did, key, rotation, op, store, RepoHead(cid, commit, data), None, clock)  # type: ignore[arg-type]
    return account, paths


def _generate_chunk(args: tuple[Plan, list[int], dict[int, list[int]]]) -> list[Any]:
    """Accounts `indexes`: their identity and every (host, seq, frame) of their commits."""
    plan, indexes, ranks = args
    out: list[Any] = []
    for index in indexes:
        account, paths = _make_account(plan, index)
        rng = random.Random(plan.seed * 7_000_003 + index)
        host = index % plan.hosts
        per_round = len(ranks[host])
        rank = ranks[host][index // plan.hosts]
        first = rank * plan.cold_events + 1  # the cold round keeps an account's frames together
        cold = [
            IdentityEvent(0, account.did, PLACEHOLDER_TIME, f"u{index}.bench.test"),
            AccountEvent(0, account.did, PLACEHOLDER_TIME, True),
            account.sync_event(),  # its `time` is PLACEHOLDER_TIME too
        ]
        frames = [
            (host, first + i, encode_frame(_with_seq(e, first + i))) for i, e in enumerate(cold)
        ]
        for c in range(plan.commits):
            event = account.commit(_writes(rng, account, paths, [account.did], PLACEHOLDER_TIME))
            if c < plan.cold:
                seq = first + 3 + c
            else:
                seq = per_round * plan.cold_events + (c - plan.cold) * per_round + rank + 1
            frames.append((host, seq, encode_frame(_with_seq(event, seq))))
        ident = {
            "did": account.did,
            "op": account.last_op,
            "rotation": account.rotation.hex(),
            "host": host,
        }
        out.append((ident, frames))
    return out


def _with_seq(event: Any, seq: int) -> Any:
    return type(event)(**{**event.__dict__, "seq": seq})


def generate(plan: Plan, cache: Path) -> Path:
    """Make (or reuse) the plan's accounts and frames under `cache`; returns their folder."""
    folder = cache / plan.key
    if (folder / "done").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(plan.seed)
    ranks: dict[int, list[int]] = {}
    for host in range(plan.hosts):
        n = len(range(host, plan.accounts, plan.hosts))
        order = list(range(n))
        rng.shuffle(order)
        ranks[host] = order
    indexes = list(range(plan.accounts))
    chunks = [(plan, indexes[i : i + 50], ranks) for i in range(0, plan.accounts, 50)]
    idents: list[Any] = []
    per_host: list[dict[int, bytes]] = [{} for _ in range(plan.hosts)]
    started = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(os.cpu_count() or 2) as pool:
        for done, result in enumerate(pool.imap_unordered(_generate_chunk, chunks), 1):
            for ident, frames in result:
                idents.append(ident)
                for host, seq, frame in frames:
                    per_host[host][seq] = frame
            print(f"\r  generated {done * 50}/{plan.accounts} accounts", end="", flush=True)
    print(f" in {time.perf_counter() - started:.0f} s")
    (folder / "accounts.json").write_text(json.dumps(idents))
    for host, frames in enumerate(per_host):
        with open(folder / f"host{host}.frames", "wb") as f:
            for seq in range(1, len(frames) + 1):
                frame = frames[seq]
                f.write(struct.pack(">I", len(frame)) + frame)
    (folder / "done").write_text("ok")
    return folder


def load_frames(path: Path) -> list[bytes]:
    data = path.read_bytes()
    frames, pos = [], 0
    while pos < len(data):
        (n,) = struct.unpack_from(">I", data, pos)
        frames.append(data[pos + 4 : pos + 4 + n])
        pos += 4 + n
    return frames


# --- upstream PDSes -------------------------------------------------------------------------


class Host:
    """One upstream's frames and how far it may send them."""

    def __init__(self, frames: list[bytes]) -> None:
        self.frames = frames
        self.offsets = [f.find(TIME_KEY) + len(TIME_KEY) for f in frames]
        self.pos = 0
        self.limit = 0
        self.rate = 0.0
        self.phase_start = (0, 0.0)
        self.moved = asyncio.Event()


async def _upstream(folder: Path, hosts: int) -> None:
    from websockets.asyncio.server import ServerConnection, serve
    from websockets.datastructures import Headers
    from websockets.http11 import Request, Response

    state = [Host(load_frames(folder / f"host{i}.frames")) for i in range(hosts)]
    stamp = {"ms": -1, "bytes": b""}

    def now_bytes() -> bytes:
        ms = int(time.time() * 1000)
        if ms != stamp["ms"]:
            stamp["ms"], stamp["bytes"] = ms, _now().encode()
        return stamp["bytes"]  # type: ignore[return-value]

    def describe(host: int) -> Any:
        def process(conn: ServerConnection, request: Request) -> Response | None:
            if request.path.startswith("/xrpc/com.atproto.sync.subscribeRepos"):
                return None
            body = json.dumps({"did": f"did:web:upstream{host}.test"}).encode()
            headers = Headers([("Content-Type", "application/json")])
            headers["Content-Length"] = str(len(body))
            return Response(200, "OK", headers, body)

        return process

    def handler(host: Host) -> Any:
        async def serve_stream(ws: ServerConnection) -> None:
            query = parse_qs(urlsplit(ws.request.path).query) if ws.request else {}
            host.pos = max(host.pos, int(query.get("cursor", ["0"])[0]))
            while True:
                start_pos, t0 = host.phase_start
                allowed = host.limit
                if host.rate > 0:
                    allowed = min(allowed, start_pos + int(host.rate * (time.time() - t0)) + 1)
                if host.pos >= allowed:
                    if host.pos >= host.limit:
                        host.moved.clear()
                        await host.moved.wait()
                    else:
                        await asyncio.sleep(0.005)
                    continue
                stop = min(allowed, host.pos + 64)
                for i in range(host.pos, stop):
                    frame = bytearray(host.frames[i])
                    at = host.offsets[i]
                    frame[at : at + 24] = now_bytes()
                    await ws.send(bytes(frame))
                    host.pos = i + 1

        return serve_stream

    servers = []
    for i, host in enumerate(state):
        server = await serve(
            handler(host),
            "127.0.0.1",
            0,
            process_request=describe(i),
            compression=None,
            max_size=2**20,
        )
        servers.append(server)
    ports = [next(iter(s.sockets)).getsockname()[1] for s in servers]
    print(json.dumps({"ports": ports, "frames": [len(h.frames) for h in state]}), flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := (await reader.readline()).decode().split():
        if line[0] == "go":  # go <frames per host> <frames/s per host, 0 = full speed>
            count, rate = int(line[1]), float(line[2])
            for host in state:
                host.limit = min(len(host.frames), host.limit + count)
                host.rate = rate
                host.phase_start = (host.pos, time.time())
                host.moved.set()
            while any(h.pos < h.limit for h in state):
                await asyncio.sleep(0.01)
            print(json.dumps({"sent": [h.pos for h in state]}), flush=True)
    for server in servers:
        server.close()


# --- consumers ------------------------------------------------------------------------------


class Consumer(asyncio.Protocol):
    """A websocket client reading server frames off the socket: counts and sampled lag only.
    Firehose frames are binary; one starting with a one-key map header, {op: -1}, is an error."""

    OPCODE = 0x2
    ERROR_BYTE = 0xA1

    @staticmethod
    def sent_at(payload: bytes) -> float:
        """When the frame was sent, from its `time`."""
        at = payload.find(TIME_KEY) + len(TIME_KEY)
        return datetime.fromisoformat(payload[at : at + 24].decode()).timestamp()

    def __init__(self, path: str, ready: asyncio.Future[None]) -> None:
        self.path = path
        self.ready = ready
        self.buf = b""
        self.upgraded = False
        self.count = 0
        self.commits = 0
        self.errors = 0
        self.first = 0.0
        self.last = 0.0
        self.lags: list[float] = []
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(
            f"GET {self.path} HTTP/1.1\r\nHost: relay\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.buf = buf
                return
            self.upgraded = True
            self.ready.set_result(None)
            buf = buf[end + 4 :]
        pos, size, now = 0, len(buf), 0.0
        while size - pos >= 2:
            n = buf[pos + 1] & 0x7F
            head = 2
            if n == 126:
                if size - pos < 4:
                    break
                n, head = (buf[pos + 2] << 8) | buf[pos + 3], 4
            elif n == 127:
                if size - pos < 10:
                    break
                n, head = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
            if size - pos < head + n:
                break
            if buf[pos] & 0x0F != self.OPCODE:
                self.errors += 1  # a close frame
            else:
                if not now:
                    now = time.time()
                if buf[pos + head] == self.ERROR_BYTE:
                    self.errors += 1
                elif buf.startswith(COMMIT_HEADER, pos + head):
                    self.commits += 1
                self.count += 1
                if self.count % SAMPLE_EVERY == 1:
                    self.lags.append(now - self.sent_at(buf[pos + head : pos + head + n]))
            pos += head + n
        self.buf = buf[pos:]
        if now:
            self.first = self.first or now
            self.last = now

    def report(self) -> dict[str, Any]:
        out = {
            "count": self.count,
            "commits": self.commits,
            "errors": self.errors,
            "first": self.first,
            "last": self.last,
            "lags": self.lags,
        }
        self.count = self.commits = self.errors = 0
        self.first = self.last = 0.0
        self.lags = []
        return out


async def consumers(
    relay_url: str,
    endpoint: str = "/xrpc/com.atproto.sync.subscribeRepos",
    kind: type[Consumer] = Consumer,
) -> None:
    """Consumers of `endpoint` driven by stdin: `connect K [QUERY]`, `count`, `report`,
    `close` (bench/stream.py reads Jetstream's /subscribe with its own `kind`)."""
    loop = asyncio.get_running_loop()
    parts = urlsplit(relay_url)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    open_: list[Consumer] = []
    while line := (await reader.readline()).decode().split():
        if line[0] == "connect":
            path = endpoint + (f"?{line[2]}" if len(line) > 2 else "")
            for _ in range(int(line[1])):
                ready: asyncio.Future[None] = loop.create_future()
                _, consumer = await loop.create_connection(
                    lambda ready=ready, path=path: kind(path, ready),  # type: ignore[misc]
                    parts.hostname,
                    parts.port,
                )
                await ready
                open_.append(consumer)
            print(json.dumps({"connected": len(open_)}), flush=True)
        elif line[0] == "count":
            print(json.dumps({"counts": [c.count for c in open_]}), flush=True)
        elif line[0] == "report":
            print(json.dumps({"consumers": [c.report() for c in open_]}), flush=True)
        elif line[0] == "close":
            for c in open_:
                if c.transport is not None:
                    c.transport.close()
            open_.clear()
            print(json.dumps({"closed": True}), flush=True)


# --- PLC latency ----------------------------------------------------------------------------


async def _delay_line(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float
) -> None:
    """Copy `reader` to `writer`, each chunk `delay` seconds after it arrived (in order, so a
    stream of answers is delayed, not slowed)."""
    chunks: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def forward() -> None:
        while True:
            due, data = await chunks.get()
            if not data:
                break
            await asyncio.sleep(max(due - time.monotonic(), 0))
            writer.write(data)
            await writer.drain()

    forwarding = asyncio.create_task(forward())
    try:
        while data := await reader.read(1 << 16):
            chunks.put_nowait((time.monotonic() + delay, data))
        chunks.put_nowait((0.0, b""))
        await forwarding
    finally:
        forwarding.cancel()
        writer.close()


async def _plc_proxy(target_url: str, delay_ms: float) -> None:
    """Forward TCP connections to the PLC at `target_url`, delaying every answer `delay_ms`."""
    target = urlsplit(target_url)
    delay = delay_ms / 1000

    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            plc_r, plc_w = await asyncio.open_connection(target.hostname, target.port)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(
            _delay_line(client_r, plc_w, 0.0),
            _delay_line(plc_r, client_w, delay),
            return_exceptions=True,
        )

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = next(iter(server.sockets)).getsockname()[1]
    print(json.dumps({"url": f"http://127.0.0.1:{port}"}), flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    await reader.read()  # until the bench closes our stdin or stops us
    server.close()


if __name__ == "__main__":
    role = sys.argv[1]
    if role == "upstream":
        asyncio.run(_upstream(Path(sys.argv[2]), int(sys.argv[3])))
    elif role == "consumers":
        asyncio.run(consumers(sys.argv[2]))
    elif role == "plc-proxy":
        asyncio.run(_plc_proxy(sys.argv[2], float(sys.argv[3])))
    else:
        raise SystemExit(f"unknown role {role!r}")

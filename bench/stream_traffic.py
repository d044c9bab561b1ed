"""Traffic for bench/stream.py: a relay that replays signed commits, and cheap /subscribe
consumers that count what Jetstream delivers.

Run by bench/stream.py, never by hand: `stream_traffic.py relay <frames-file>` and
`stream_traffic.py consumers <jetstream-url>` are child processes driven by lines on stdin.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

from websockets.asyncio.server import ServerConnection, serve

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from atcore.frames import decode_frame, encode_frame  # noqa: E402
from bench.relay_traffic import Consumer, consumers, load_frames  # noqa: E402

TIME_US = b'"time_us":'


def resequenced(base: list[bytes], count: int) -> list[bytes]:
    """`count` frames cycling through `base`, with seqs 1..count, as a relay would number
    them. Jetstream trusting its relay checks no rev chain, so a commit may come round again."""
    events = [decode_frame(frame) for frame in base]
    return [
        encode_frame(events[i % len(events)], check=False, seq=i + 1)  # type: ignore[arg-type]
        for i in range(count)
    ]


async def _relay(path: Path) -> None:
    """Serve subscribeRepos; `send N RATE` sends the next N frames at RATE per second (0: as
    fast as the socket takes them) to whoever is connected."""
    base = load_frames(path)
    frames: list[bytes] = []
    pos = 0
    peers: set[ServerConnection] = set()

    async def handler(ws: ServerConnection) -> None:
        peers.add(ws)
        try:
            await ws.wait_closed()
        finally:
            peers.discard(ws)

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    async with serve(handler, "127.0.0.1", 0, compression=None, max_queue=None) as server:
        port = server.sockets[0].getsockname()[1]
        print(json.dumps({"port": port}), flush=True)
        while line := (await reader.readline()).decode().split():
            if line[0] == "prepare":
                frames = resequenced(base, int(line[1]))
                print(json.dumps({"frames": len(frames)}), flush=True)
            elif line[0] == "wait":
                while not peers:
                    await asyncio.sleep(0.05)
                print(json.dumps({"peers": len(peers)}), flush=True)
            elif line[0] == "send":
                count, rate = int(line[1]), float(line[2])
                started = time.perf_counter()
                for i, frame in enumerate(frames[pos : pos + count]):
                    for ws in list(peers):
                        await ws.send(frame)
                    if rate and i % 50 == 49:
                        ahead = (i + 1) / rate - (time.perf_counter() - started)
                        if ahead > 0:
                            await asyncio.sleep(ahead)
                pos += count
                print(
                    json.dumps({"sent": count, "seconds": time.perf_counter() - started}),
                    flush=True,
                )


class JsonConsumer(Consumer):
    """relay_traffic's raw websocket reader, for Jetstream's text frames: lag from `time_us`."""

    OPCODE = 0x1
    ERROR_BYTE = -1  # /subscribe has no error frames, only close codes

    @staticmethod
    def sent_at(payload: bytes) -> float:
        at = payload.find(TIME_US) + len(TIME_US)
        return int(payload[at : payload.index(b",", at)]) / 1e6


if __name__ == "__main__":
    role = sys.argv[1]
    if role == "relay":
        asyncio.run(_relay(Path(sys.argv[2])))
    elif role == "consumers":
        asyncio.run(consumers(sys.argv[2], "/subscribe", JsonConsumer))
    else:
        raise SystemExit(f"unknown role {role!r}")

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

import uvloop
from websockets.asyncio.server import ServerConnection, serve

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from atcore.frames import decode_frame, encode_frame  # noqa: E402
from bench.relay_traffic import Consumer, consumers, load_frames  # noqa: E402
from runtime.ws_frames import binary_frames  # noqa: E402

# Frames per socket write, and the most left unsent before the stand-in waits.
BURST = 50
MAX_BUFFERED = 4 * 1024 * 1024
TIME_US = b'"time_us":'
EVENT_START = b'{"did":"'
CUT_OFF = b"ConsumerTooSlow"


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
    fast as the socket takes them) to whoever is connected, BURST frames per write; `rewind N`
    steps back N frames, so that the next `send` repeats them."""
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
                frames = [binary_frames([f]) for f in resequenced(base, int(line[1]))]
                print(json.dumps({"frames": len(frames)}), flush=True)
            elif line[0] == "rewind":  # send the last N frames again, to another consumer
                pos -= int(line[1])
                print(json.dumps({"pos": pos}), flush=True)
            elif line[0] == "wait":
                while not peers:
                    await asyncio.sleep(0.05)
                print(json.dumps({"peers": len(peers)}), flush=True)
            elif line[0] == "send":
                count, rate = int(line[1]), float(line[2])
                started = time.perf_counter()
                for i in range(pos, pos + count, BURST):
                    burst = b"".join(frames[i : min(i + BURST, pos + count)])
                    for ws in list(peers):
                        # Whole frames straight to the socket: a send per frame through the
                        # library would make this stand-in, not Jetstream, the bottleneck.
                        ws.transport.write(burst)
                        while ws.transport.get_write_buffer_size() > MAX_BUFFERED:
                            await asyncio.sleep(0.001)
                    if rate:
                        ahead = (i - pos + BURST) / rate - (time.perf_counter() - started)
                        if ahead > 0:
                            await asyncio.sleep(ahead)
                pos += count
                print(
                    json.dumps({"sent": count, "seconds": time.perf_counter() - started}),
                    flush=True,
                )


class JsonConsumer(Consumer):
    """A cheaper reader than relay_traffic's for Jetstream's text frames. A thousand consumers
    at 1,000 events/s each are a million frames/s, more than a Python loop over frame headers
    takes on the cores Jetstream shares, so frames are counted by the opening of the event
    JSON, `{"did":"`, with bytes.count: every event starts with it and it occurs nowhere
    else (a quote inside JSON text is escaped; no record here has a `did` key). The lag is
    sampled from the first and the last event starting in each read: the oldest and the
    newest of a page, whose stamps span the wake-up interval."""

    def data_received(self, data: bytes) -> None:
        if not self.upgraded:
            buf = self.buf + data
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.buf = buf
                return
            self.upgraded = True
            self.ready.set_result(None)
            self.buf, data = b"", buf[end + 4 :]
        buf = self.buf + data
        found = buf.count(EVENT_START)
        if CUT_OFF in buf:  # the reason of the close frame when Jetstream cuts a reader off
            self.errors += 1
        self.buf = buf[1 - len(EVENT_START) :]
        if not found:
            return
        now = time.time()
        self.count += found
        for at in {buf.find(EVENT_START), buf.rfind(EVENT_START)}:
            stamp = buf.find(TIME_US, at, at + 200)
            end = buf.find(b",", stamp)
            if stamp >= 0 and end >= 0:
                self.lags.append(now - int(buf[stamp + len(TIME_US) : end]) / 1e6)
        self.first = self.first or now
        self.last = now


if __name__ == "__main__":
    role = sys.argv[1]
    if role == "relay":
        asyncio.run(_relay(Path(sys.argv[2])))
    elif role == "consumers":
        uvloop.run(consumers(sys.argv[2], "/subscribe", JsonConsumer))
    else:
        raise SystemExit(f"unknown role {role!r}")

"""runtime.ws_frames: uvicorn with the SEND_FRAMES extension, against a real websocket client."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from websockets.asyncio.client import connect
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.streams import StreamReader

from atcore.eventlog import EventLog
from atcore.xrpc.errors import InvalidRequest
from atcore.xrpc.subscription import SEND_FRAMES
from runtime.ws_frames import FramesProtocol, binary_frames

# One payload per length class of the frame header: 7-bit, 16-bit and 64-bit.
PAYLOADS = [b"", b"x" * 125, b"y" * 126, b"z" * 65_535, b"w" * 65_536, bytes(range(256)) * 400]


def test_binary_frames_parse_as_websocket_frames() -> None:
    reader = StreamReader()
    reader.feed_data(binary_frames(PAYLOADS))
    got = []
    for _ in PAYLOADS:
        parser = Frame.parse(reader.read_exact, mask=False)
        try:
            next(parser)
            raise AssertionError("incomplete frame")
        except StopIteration as stop:
            frame: Frame = stop.value
        assert frame.opcode is Opcode.BINARY and frame.fin
        got.append(bytes(frame.data))
    assert got == PAYLOADS
    assert not reader.buffer  # nothing after the last frame


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    assert scope["type"] == "websocket"
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    assert SEND_FRAMES in scope["extensions"]
    await send({"type": SEND_FRAMES, "frames": PAYLOADS[:3]})
    await send({"type": "websocket.send", "bytes": b"between"})
    await send({"type": SEND_FRAMES, "frames": PAYLOADS[3:]})
    await send({"type": "websocket.close", "code": 1000})


@asynccontextmanager
async def _serving(app: Any) -> AsyncIterator[str]:
    """`app` under uvicorn with FramesProtocol, in this loop, on a free 127.0.0.1 port."""
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, ws=FramesProtocol, log_config=None, lifespan="off")
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        yield f"ws://127.0.0.1:{port}/"
    finally:
        server.should_exit = True
        await serving


async def test_frames_reach_a_client_as_separate_messages_in_order() -> None:
    async with _serving(_app) as url, connect(url, max_size=1 << 20) as ws:
        got = [message async for message in ws]
    assert got == [*PAYLOADS[:3], b"between", *PAYLOADS[3:]]


async def test_a_stalled_subscriber_is_dropped_and_the_others_get_everything() -> None:
    """Flow control end to end: a client that stops reading fills its socket, its sends wait,
    its bounded buffer overflows and it leaves the fan-out; the reading client misses nothing."""
    frames = [i.to_bytes(4, "big") * 2500 for i in range(1, 2001)]  # 10 KB each, 20 MB in all

    async def nothing_stored(after: int, limit: int) -> list[tuple[int, bytes]]:
        return []

    async def no_oldest() -> int | None:
        return None

    log = EventLog(nothing_stored, no_oldest, buffer=100)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        with contextlib.suppress(InvalidRequest, OSError):
            async for run in log.subscribe_batches(None):
                await send({"type": SEND_FRAMES, "frames": run})

    async with (
        _serving(app) as url,
        connect(url, max_size=1 << 20) as reading,
        connect(url, max_size=1 << 20, max_queue=1) as stalled,  # never read from
    ):
        got: list[bytes] = []

        async def read_all() -> None:
            while len(got) < len(frames):
                got.append(bytes(await reading.recv()))

        try:
            async with asyncio.timeout(30):
                while log.consumers < 2:
                    await asyncio.sleep(0.01)
                reader = asyncio.create_task(read_all())
                for seq, frame in enumerate(frames, 1):
                    log.publish(seq, frame)
                    while seq % 50 == 0 and len(got) < seq:  # the reading client keeps up
                        await asyncio.sleep(0.001)
                await reader
            assert got == frames
            assert log.consumers == 1
            assert stalled.state is State.OPEN  # dropped by the fan-out, not by the socket
        finally:
            log.close()  # ends the streams, so the server can stop
            stalled.transport.abort()  # it would never read the server's closing handshake

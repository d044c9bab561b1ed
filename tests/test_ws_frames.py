"""skyloft.ws_frames: uvicorn with the SEND_FRAMES extension, against a real websocket client."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import uvicorn
from websockets.asyncio.client import connect
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from atcore.xrpc.subscription import SEND_FRAMES
from skyloft.ws_frames import FramesProtocol, binary_frames

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


async def test_frames_reach_a_client_as_separate_messages_in_order() -> None:
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(_app, ws=FramesProtocol, log_config=None, lifespan="off")
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        async with connect(f"ws://127.0.0.1:{port}/", max_size=1 << 20) as ws:
            got = [message async for message in ws]
        assert got == [*PAYLOADS[:3], b"between", *PAYLOADS[3:]]
    finally:
        server.should_exit = True
        await serving

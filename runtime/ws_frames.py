"""uvicorn's websocket protocol with the SEND_FRAMES extension (atcore.xrpc.subscription).

A firehose sends every event to every subscriber. Through ASGI each frame costs a `send` call
through the app's middleware, the server's checks and the websockets library's framing, then a
socket write: ~10 µs per frame and subscriber, most of a core at 100 subscribers x 1,000 events
per second. With SEND_FRAMES a subscription hands over what queued for it since the last send
(a page of frames at most, atcore.eventlog) as one message; this protocol frames each one
(server frames are unmasked, RFC 6455 section 5.2) and writes them in one call. The connection's
flow control still applies: while the socket's buffer is over its high-water mark, the next send
waits, and the subscriber's own bounded buffer fills instead (ConsumerTooSlow).

It relies on the sans-I/O protocol's internals as uvicorn 0.52.1 has them (`disconnected`,
`close_sent`, `writable`): pyproject.toml pins that as the minimum and
tests/test_uvicorn_pin.py runs this module's tests on exactly that release.
"""

from __future__ import annotations

from collections.abc import Sequence

from uvicorn._types import ASGISendEvent
from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request
from websockets.protocol import State

from atcore.xrpc.subscription import SEND_FRAMES

__all__ = ["FramesProtocol", "binary_frames"]


def binary_frames(payloads: Sequence[bytes], *, text: bool = False) -> bytes:
    """Each payload as one unfragmented, unmasked binary websocket frame, back to back; text
    frames when `text` (the payloads are then UTF-8)."""
    first = 0x81 if text else 0x82
    parts: list[bytes] = []
    for payload in payloads:
        n = len(payload)
        if n < 126:
            parts.append(bytes((first, n)))
        elif n < 0x10000:
            parts.append(bytes((first, 0x7E)) + n.to_bytes(2, "big"))
        else:
            parts.append(bytes((first, 0x7F)) + n.to_bytes(8, "big"))
        parts.append(payload)
    return b"".join(parts)


class FramesProtocol(WebSocketsSansIOProtocol):
    """uvicorn's `websockets-sansio` protocol, offering SEND_FRAMES to the app."""

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)  # absent when the handshake was refused
        if scope is not None:
            scope["extensions"][SEND_FRAMES] = {}

    async def send(self, message: ASGISendEvent) -> None:
        if message["type"] != SEND_FRAMES:
            await super().send(message)
            return
        await self.writable.wait()
        if self.disconnected or self.close_sent or self.conn.state is not State.OPEN:
            raise ClientDisconnected()
        framed: bytes | None = message.get("framed")  # type: ignore[assignment]
        if framed is None:
            frames: Sequence[bytes] = message["frames"]  # type: ignore[typeddict-item]
            framed = binary_frames(frames, text=bool(message.get("text")))
        self.transport.write(framed)

"""Serving one XRPC subscription over a websocket (spec-event-stream.md, "Connection").

Connection-time errors (bad params, failed auth) travel on the stream itself: the socket is
accepted, one error frame is sent, and the socket is closed. Frames from the client are read and
ignored (the spec says servers must not treat them as errors); reading them is how a client's
departure is noticed, so the handler is cancelled then even while it waits for something to send.

Handlers send runs of frames with `SubscriptionRequest.send_frames`. Where the ASGI server
offers the SEND_FRAMES extension (runtime.ws_frames, under uvicorn), a run goes to the socket in
one write, as one ASGI message; elsewhere each frame is one `websocket.send`. A firehose with a
hundred subscribers sends a hundred copies of every event, so this is its hottest path.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Sequence

from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from atcore.frames import encode_error
from atcore.lexicon import validate_params
from atcore.xrpc.failures import CLOSE_INTERNAL, to_xrpc_error
from atcore.xrpc.router import (
    FrameSender,
    Subscription,
    SubscriptionRequest,
    XrpcRouter,
    query_params,
)

# RFC 6455 close code after an error frame the client caused (CLOSE_INTERNAL: our own failure).
CLOSE_POLICY = 1008
# The ASGI extension (and message type) for sending several binary messages at once:
# {"type": SEND_FRAMES, "frames": [bytes, ...]}, offered in scope["extensions"]; with
# "text": True the frames are text frames (their bytes UTF-8); with "framed": bytes, those bytes
# are the frames already framed (runtime.ws_frames.binary_frames), written as they are.
SEND_FRAMES = "skyloft.websocket.send_frames"


class SubscriptionEndpoint:
    """The websocket endpoint (an ASGI app) of one registered subscription."""

    def __init__(self, router: XrpcRouter, subscription: Subscription) -> None:
        self.router = router
        self.subscription = subscription

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        sub = self.subscription
        websocket = WebSocket(scope, receive, send)
        await websocket.accept()
        try:
            params = validate_params(
                self.router.catalog, sub.nsid, query_params(websocket.query_params)
            )
            auth = await sub.auth(websocket) if sub.auth is not None else None
            sender = frame_sender(scope, send, websocket)
            request = SubscriptionRequest(websocket, sub.nsid, params, sender, auth)
            if not await _unless_client_leaves(sub.handler(request), websocket):
                return
        except WebSocketDisconnect:
            return
        except Exception as exc:  # reported to the client as an error frame, then closed
            error = to_xrpc_error(exc, f"subscription {sub.nsid}", scope)
            body = error.body()
            code = CLOSE_INTERNAL if error.status >= 500 else CLOSE_POLICY
            await _close(websocket, code, encode_error(body["error"], body.get("message")))
            return
        await _close(websocket, 1000, None)


def frame_sender(scope: Scope, send: Send, websocket: WebSocket) -> FrameSender:
    """How to send runs of binary frames on this connection (see the module docstring)."""
    if SEND_FRAMES not in scope.get("extensions", {}):

        async def one_by_one(frames: Sequence[bytes]) -> None:
            for frame in frames:
                await websocket.send_bytes(frame)

        return one_by_one

    async def at_once(frames: Sequence[bytes]) -> None:
        try:
            await send({"type": SEND_FRAMES, "frames": frames})
        except OSError:  # the client is gone (as starlette reports it for one frame)
            websocket.application_state = WebSocketState.DISCONNECTED
            raise WebSocketDisconnect(code=1006) from None

    return at_once


async def _unless_client_leaves(handler: Awaitable[None], websocket: WebSocket) -> bool:
    """Run the handler until it ends (True) or the client disconnects first (False)."""
    serving = asyncio.ensure_future(handler)
    watching = asyncio.ensure_future(_until_disconnect(websocket))
    try:
        await asyncio.wait((serving, watching), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (serving, watching):
            task.cancel()
        await asyncio.gather(serving, watching, return_exceptions=True)
    if serving.done() and not serving.cancelled():
        serving.result()  # the handler's own error, reported by the caller
        return True
    return False


async def _until_disconnect(websocket: WebSocket) -> None:
    while (await websocket.receive())["type"] != "websocket.disconnect":
        pass


async def _close(websocket: WebSocket, code: int, frame: bytes | None) -> None:
    if websocket.application_state != WebSocketState.CONNECTED:
        return
    # The client may already be gone; there is nobody left to tell.
    with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
        if frame is not None:
            await websocket.send_bytes(frame)
        await websocket.close(code)

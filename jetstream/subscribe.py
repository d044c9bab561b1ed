"""`GET /subscribe`: the Jetstream v1 websocket (blog-jetstream.md, "Consuming Jetstream").

Query: wantedCollections, wantedDids, maxMessageSizeBytes (jetstream.filters), cursor (unix
microseconds: replay from the log, then live), compress=true (or `Socket-Encoding: zstd`:
zstd frames, jetstream.compress) and requireHello=true (nothing is sent until the client's
first `options_update`). A bad query is refused before the upgrade with a 400 and an XRPC
error body. Over the socket the client may send
`{"type": "options_update", "payload": {...}}` to replace its filter; a message that is not
JSON closes with 1007, a bad filter with 1008 and the reason, unknown types are ignored.

Each subscriber is one loop reading the shared log from its own position (jetstream.log): a
page of events, filtered, sent as one write, next page; subscribers with the same filter at the
same position send the same page, made once (jetstream.fanout). A slow client is simply behind; only
one the log no longer holds events for is closed (1008, "ConsumerTooSlow ...").
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Final

from starlette.responses import JSONResponse
from starlette.types import Message
from starlette.websockets import WebSocket, WebSocketDisconnect

from atcore.xrpc.subscription import SEND_FRAMES
from jetstream.compress import compressed
from jetstream.context import JetstreamContext
from jetstream.events import Entry
from jetstream.fanout import Page, SharedPages
from jetstream.filters import BadPayload, Filter, InvalidOptions, options_update
from jetstream.log import EventLog, FellBehind

log = logging.getLogger(__name__)

__all__ = ["Refused", "Session", "subscribe"]

PAGE: Final = 512
CLOSE_NORMAL: Final = 1000
CLOSE_BAD_DATA: Final = 1007
CLOSE_POLICY: Final = 1008
_MAX_REASON: Final = 120

Send = Callable[[Sequence[bytes]], Awaitable[None]]


class Refused(Exception):
    """The subscription must end: close with `code` and `reason`, after sending `frame`."""

    def __init__(self, code: int, reason: str, frame: bytes | None = None) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason[:_MAX_REASON]
        self.frame = frame


def parse_cursor(raw: str | None) -> int | None:
    if raw is None or raw == "":
        return None
    try:
        cursor = int(raw)
    except ValueError:
        raise InvalidOptions(f"invalid cursor: {raw[:40]!r}") from None
    if cursor < 0:
        raise InvalidOptions(f"invalid cursor: negative value {cursor}")
    return cursor


async def subscribe(websocket: WebSocket) -> None:
    ctx: JetstreamContext = websocket.app.state.ctx
    events = ctx.events
    params = websocket.query_params
    try:
        wanted = Filter.parse(
            params.getlist("wantedCollections"),
            params.getlist("wantedDids"),
            params.get("maxMessageSizeBytes"),
        )
        cursor = parse_cursor(params.get("cursor"))
    except InvalidOptions as exc:
        refusal = {"error": "InvalidRequest", "message": str(exc)}
        await websocket.send_denial_response(JSONResponse(refusal, status_code=400))
        return
    compress = params.get("compress") == "true" or "zstd" in websocket.headers.get(
        "socket-encoding", ""
    )
    await websocket.accept()
    session = Session(websocket, events, ctx.pages, wanted, compress)
    await session.run(events.position(cursor), hello=params.get("requireHello") == "true")


class Session:
    """One /subscribe subscriber: its filter (replaced by options_update) and its position in
    the log. Subclasses change the frames (`frame`, `pack`) and the client's messages."""

    def __init__(
        self,
        websocket: WebSocket,
        events: EventLog,
        pages: SharedPages,
        wanted: Filter,
        compress: bool,
    ):
        self.websocket = websocket
        self.events = events
        self.pages = pages
        self.filter = wanted
        self.compress = compress
        self.hello = asyncio.Event()
        self.send, self.send_page = _senders(websocket, text=not compress)

    def frame(self, entry: Entry) -> bytes:
        """The event as sent, uncompressed (maxMessageSizeBytes applies to it)."""
        return entry.body

    def pack(self, entry: Entry) -> bytes:
        """The event as sent, compressed."""
        return compressed(entry)

    def too_slow(self, reason: str) -> Refused:
        return Refused(CLOSE_POLICY, f"ConsumerTooSlow: {reason}")

    async def run(self, after: int, *, hello: bool = False, first: bytes | None = None) -> None:
        """Stream from the log after the key `after` (once the client said hello, when it
        must), `first` before anything else, until either side ends it."""
        reading = asyncio.ensure_future(self._read_client())
        sending = asyncio.ensure_future(self._stream(after, hello, first))
        try:
            done, _ = await asyncio.wait((reading, sending), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (reading, sending):
                task.cancel()
            results = await asyncio.gather(reading, sending, return_exceptions=True)
        refusal = next((r for r in results if isinstance(r, Refused)), None)
        for result in results:
            if isinstance(result, Exception) and not isinstance(
                result, (Refused, WebSocketDisconnect, OSError)
            ):
                log.error("subscriber failed", exc_info=result)
        if refusal is not None:
            if refusal.frame is not None:
                with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnect):
                    await self.send([refusal.frame])
            await self._close(refusal.code, refusal.reason)
        elif reading not in done:
            await self._close(CLOSE_NORMAL, "")

    async def _stream(self, after: int, hello: bool, first: bytes | None) -> None:
        if hello:
            await self.hello.wait()
        events, pages = self.events, self.pages
        if first is not None:
            await self.send([first])
        wanted, group = None, 0
        while True:
            await events.wait(after)  # at once when newer events were announced
            if wanted is not self.filter:  # replaced by an options_update
                wanted = self.filter
                group = pages.group((type(self), self.compress, wanted))
            page = pages.get(group, after) if after >= events.memory_floor else None
            if page is None:
                try:
                    entries = await events.read(after, PAGE)
                except FellBehind as exc:
                    raise self.too_slow(str(exc)) from None
                if not entries:
                    continue
                page = self._page(wanted, entries)
                if after >= events.memory_floor:
                    pages.put(group, after, page)
            after = page.end
            if page.frames:
                await self.send_page(page)

    def _page(self, wanted: Filter, entries: Sequence[Entry]) -> Page:
        """The frames this subscriber sends for `entries` under the filter `wanted`."""
        frame = self.frame
        limit = wanted.max_size or sys.maxsize
        chosen = [e for e in entries if wanted.wants(e) and len(frame(e)) <= limit]
        out = [self.pack(e) for e in chosen] if self.compress else [frame(e) for e in chosen]
        return Page(out, entries[-1].key, text=not self.compress)

    async def _read_client(self) -> None:
        while True:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            self.on_message(message)

    def on_message(self, message: Message) -> None:
        """A message from the client: an options_update (or anything else, ignored)."""
        text = message.get("text")
        if text is not None:  # binary messages mean nothing here
            self._options(text)

    def _options(self, text: str) -> None:
        try:
            envelope = json.loads(text)
        except (ValueError, RecursionError):  # RecursionError: nested deeper than json can go
            raise Refused(CLOSE_BAD_DATA, "bad SubscriberSourcedMessage envelope") from None
        if not isinstance(envelope, dict) or not isinstance(envelope.get("type"), str):
            raise Refused(CLOSE_BAD_DATA, "bad SubscriberSourcedMessage envelope")
        if envelope["type"] != "options_update":
            log.debug("ignoring subscriber message of type %.40r", envelope["type"])
            return
        try:
            self.filter = options_update(envelope.get("payload"))
        except BadPayload as exc:
            raise Refused(CLOSE_BAD_DATA, f"bad options_update payload: {exc}") from None
        except InvalidOptions as exc:
            raise Refused(CLOSE_POLICY, str(exc)) from None
        self.hello.set()

    async def _close(self, code: int, reason: str) -> None:
        try:
            await self.websocket.close(code, reason)
        except (RuntimeError, OSError, WebSocketDisconnect):
            pass  # the client is already gone


def _senders(websocket: WebSocket, *, text: bool) -> tuple[Send, Callable[[Page], Awaitable[None]]]:
    """How frames, and a shared page of them, reach the socket: in one write where the server
    offers SEND_FRAMES (runtime.ws_frames, under uvicorn; a page framed once for all who send
    it), else a message at a time."""
    scope_send = websocket._send
    if SEND_FRAMES in websocket.scope.get("extensions", {}):

        async def at_once(frames: Sequence[bytes]) -> None:
            await scope_send({"type": SEND_FRAMES, "frames": frames, "text": text})

        async def page_at_once(page: Page) -> None:
            message = {"type": SEND_FRAMES, "frames": page.frames, "framed": page.framed()}
            await scope_send(message)

        return at_once, page_at_once

    async def one_by_one(frames: Sequence[bytes]) -> None:
        for frame in frames:
            if text:
                await websocket.send_text(frame.decode())
            else:
                await websocket.send_bytes(frame)

    async def page_one_by_one(page: Page) -> None:
        await one_by_one(page.frames)

    return one_by_one, page_one_by_one

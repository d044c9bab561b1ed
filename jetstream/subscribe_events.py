"""`network.bsky.jetstream.subscribeEvents` and `getZstdDictionary`: the official Jetstream's v2
endpoint, served from the same log as /subscribe (lexicons network.bsky.jetstream.*).

Frames are `xrpc.v1.json` text: `{"$type":"message","payload":{"$type":"...#commit", ...}}`,
the payload's keys in lexicon-generated (alphabetical) order, or `{"$type":"error", ...}` before
a close. Cursors: a seq (below 1e15) resumes inclusively, and one below what the log retains is
refused before the upgrade (400 `CursorTooOld`, naming the floor); a unix-microseconds cursor
(1e15 and above) starts at that time, clamped to the oldest retained event with an #info
`OutdatedCursor` first. Filters `kinds`, `dids`, `collections` are ANDed; #sync is delivered.
The stream is server-push only: a message from the client closes it (1008). Compression is
`zstdDictionary=<id>` with the dictionary getZstdDictionary serves.
"""

from __future__ import annotations

import datetime
import json
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Message
from starlette.websockets import WebSocket

from atcore.syntax.nsid import is_valid_nsid
from jetstream.compress import V2
from jetstream.context import JetstreamContext
from jetstream.events import Entry, go_json
from jetstream.filters import MAX_COLLECTIONS, MAX_DIDS, Filter, InvalidOptions
from jetstream.log import EventLog
from jetstream.subscribe import CLOSE_POLICY, Refused, Session, parse_cursor

__all__ = ["NSID", "get_zstd_dictionary", "subscribe_events"]

NSID: Final = "network.bsky.jetstream.subscribeEvents"
SUBPROTOCOL: Final = "xrpc.v1.json"
# Cursors below this are seqs, at or above it unix microseconds.
TIME_CURSORS: Final = 10**15
KINDS: Final = frozenset({"commit", "identity", "account", "sync"})
_LEGACY: Final = ("wantedDids", "wantedCollections", "requireHello")
_MAX_SIZE: Final = 2**32 - 1


def wire_time(time_us: int) -> str:
    """RFC 3339 UTC with exactly six fractional digits."""
    seconds, micros = divmod(time_us, 1_000_000)
    moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{micros:06d}Z"


def frame_of(entry: Entry) -> bytes:
    """The event's xrpc.v1.json message frame, made on first use."""
    frame = entry.v2
    if frame is None:
        event = json.loads(entry.body)
        kind = event["kind"]
        payload: dict[str, Any] = {"$type": f"{NSID}#{kind}", "did": entry.did}
        if kind == "commit":
            payload |= event["commit"]
        else:
            payload[kind] = event[kind]
        payload |= {"seq": entry.seq, "time": wire_time(entry.key)}
        ordered = {key: payload[key] for key in sorted(payload)}
        frame = entry.v2 = f'{{"$type":"message","payload":{go_json(ordered)}}}'.encode()
    return frame


def error_frame(error: str, message: str) -> bytes:
    return go_json({"$type": "error", "error": error, "message": message}).encode()


def info_frame(name: str, message: str) -> bytes:
    payload = {"$type": f"{NSID}#info", "message": message, "name": name}
    return f'{{"$type":"message","payload":{go_json(payload)}}}'.encode()


class EventsSession(Session):
    """A subscribeEvents subscriber: v2 frames, server-push only."""

    def frame(self, entry: Entry) -> bytes:
        return frame_of(entry)

    def pack(self, entry: Entry) -> bytes:
        packed = entry.v2_packed
        if packed is None:
            packed = entry.v2_packed = V2.compress(frame_of(entry))
        return packed

    def too_slow(self, reason: str) -> Refused:
        message = f"fell behind what the log retains: {reason}"
        frame = error_frame("ConsumerTooSlow", message)
        return Refused(CLOSE_POLICY, "ConsumerTooSlow", self.pack_frame(frame))

    def pack_frame(self, frame: bytes) -> bytes:
        return V2.compress(frame) if self.compress else frame

    def on_message(self, message: Message) -> None:
        raise Refused(CLOSE_POLICY, "this stream is server-push only")


def _filter(params: Any) -> Filter:
    for name in _LEGACY:
        if name in params:
            raise InvalidOptions(f"{name} is a /subscribe parameter, not one of {NSID}")
    if params.get("compress") is not None:
        raise InvalidOptions("compress=true is the /subscribe opt-in; use zstdDictionary=<id>")
    kinds = params.getlist("kinds")
    if len(kinds) > len(KINDS) or not set(kinds) <= KINDS:
        raise InvalidOptions(f"kinds must be some of {', '.join(sorted(KINDS))}")
    dids, collections = params.getlist("dids"), params.getlist("collections")
    if len(dids) > MAX_DIDS:
        raise InvalidOptions(f"too many dids values: {len(dids)} > {MAX_DIDS}")
    if len(collections) > MAX_COLLECTIONS:
        raise InvalidOptions(f"too many collections values: {len(collections)}")
    for value in collections:
        if value.endswith(".*") and not is_valid_nsid(value[:-2] + ".x"):
            raise InvalidOptions(f"invalid collection pattern: {value[:300]}")
    if collections and kinds and "commit" not in kinds:
        raise InvalidOptions("collections filter only commits, and kinds excludes commit")
    size = params.get("maxMessageSizeBytes")
    # isdigit() alone admits "²", which int() refuses: only ASCII digits are a number here, and
    # no more of them than the limit has (int() refuses past 4300 digits).
    if size is not None and not (
        size.isascii() and size.isdigit() and len(size) <= 10 and int(size) <= _MAX_SIZE
    ):
        raise InvalidOptions("maxMessageSizeBytes must be an integer 0-4294967295")
    return Filter.parse(collections, dids, size, frozenset(kinds) or KINDS)


async def _start(events: EventLog, cursor: int | None) -> tuple[int, bytes | None]:
    """The key to stream after, and the #info frame to send first, for a cursor."""
    if cursor is None:
        return events.head, None
    if cursor < TIME_CURSORS:
        if cursor <= events.trimmed_seq:
            floor = events.trimmed_seq + 1
            raise CursorTooOld(f"cursor {cursor} is below the retention floor, seq {floor}")
        return await events.position_of_seq(cursor), None
    after = events.position(cursor)
    if cursor - 1 < events.trimmed:
        message = "cursor is older than the log; starting at the oldest event retained"
        return after, info_frame("OutdatedCursor", message)
    return after, None


class CursorTooOld(Exception):
    """A seq cursor below what the log retains (the message names the floor)."""


def _refuse(status: int, error: str, message: str) -> JSONResponse:
    return JSONResponse({"error": error, "message": message}, status_code=status)


async def subscribe_events(websocket: WebSocket) -> None:
    ctx: JetstreamContext = websocket.app.state.ctx
    events = ctx.events
    params = websocket.query_params
    try:
        wanted = _filter(params)
        cursor = parse_cursor(params.get("cursor"))
        dictionary = params.get("zstdDictionary")
        if dictionary is not None and dictionary != str(V2.id):
            refusal = _refuse(
                400, "UnknownZstdDictionary", f"unknown dictionary; the current id is {V2.id}"
            )
            await websocket.send_denial_response(refusal)
            return
        after, first = await _start(events, cursor)
    except InvalidOptions as exc:
        await websocket.send_denial_response(_refuse(400, "InvalidRequest", str(exc)))
        return
    except CursorTooOld as exc:
        await websocket.send_denial_response(_refuse(400, "CursorTooOld", str(exc)))
        return
    offered = websocket.scope.get("subprotocols", [])
    await websocket.accept(subprotocol=SUBPROTOCOL if SUBPROTOCOL in offered else None)
    session = EventsSession(websocket, events, ctx.pages, wanted, dictionary is not None)
    await session.run(after, first=first and session.pack_frame(first))


async def get_zstd_dictionary(request: Request) -> Response:
    """network.bsky.jetstream.getZstdDictionary: the current dictionary, or the one by `id`."""
    wanted = request.query_params.get("id")
    if wanted is not None and wanted != str(V2.id):
        return _refuse(400, "DictionaryNotFound", f"no dictionary {wanted[:20]!r}; current {V2.id}")
    return Response(V2.data, media_type="application/octet-stream")

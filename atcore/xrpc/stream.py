"""The client side of an XRPC event stream (spec-event-stream.md, "Streaming Wire Protocol").

`subscribe` opens the websocket, decodes each binary frame strictly with `atcore.frames`, and
yields the events. An error frame ends the stream with `StreamError`; a refused handshake (an
HTTP 4xx/5xx instead of the upgrade) does too, with its status. Bad framing or CBOR is a hard
error (`DecodeError`), as the spec asks: the connection is dropped, not the frame skipped.
Frames with an unknown `op` or `t` are yielded as `UnknownEvent` for the consumer to skip.
Given an AddressGuard, the websocket connects to an address the guard approved for the URL's
host, never resolving the name a second time (atcore.identity.pinned explains why).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosedError, InvalidStatus
from websockets.frames import CloseCode

from atcore.errors import DecodeError
from atcore.frames import MAX_FRAME_SIZE, ErrorFrame, Event, UnknownEvent, decode_frame
from atcore.identity.netguard import AddressGuard
from atcore.xrpc.errors import status_name

StreamParams = Mapping[str, str | int | bool | None]

_WS_SCHEMES = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}
# The body of a refused handshake is an XRPC error at most; don't keep more of it.
_MAX_REFUSAL_BODY = 4096


class StreamError(Exception):
    """The server ended the stream with an error (`FutureCursor`, `ConsumerTooSlow`, ...).

    `status` is set when the websocket handshake itself was refused with an HTTP status.
    """

    def __init__(self, error: str, message: str | None = None, status: int | None = None) -> None:
        super().__init__(f"{error}: {message}" if message else error)
        self.error = error
        self.message = message
        self.status = status


def stream_url(url: str, params: StreamParams | None = None) -> str:
    """A `ws(s)://` URL for an endpoint URL (`http(s)` is mapped) with the query parameters."""
    parts = urlsplit(url)
    scheme = _WS_SCHEMES.get(parts.scheme)
    if scheme is None:
        raise ValueError(f"not a websocket or http URL: {url!r:.200}")
    pairs = [
        (name, ("true" if value else "false") if isinstance(value, bool) else str(value))
        for name, value in (params or {}).items()
        if value is not None
    ]
    query = "&".join(filter(None, [parts.query, urlencode(pairs)]))
    return urlunsplit((scheme, parts.netloc, parts.path, query, ""))


async def subscribe(
    url: str,
    params: StreamParams | None = None,
    *,
    max_frame_size: int = MAX_FRAME_SIZE,
    open_timeout: float = 10.0,
    guard: AddressGuard | None = None,
    trusted: bool = False,
) -> AsyncIterator[Event | UnknownEvent]:
    """Yield the events of the stream at `url` (e.g. `wss://host/xrpc/com.atproto.sync....`);
    with `guard`, connect only to an address it approves (UnsafeAddress otherwise); `trusted`
    decodes frames without the data-model walk (atcore.frames.decode_frame), for a consumer
    that trusts the stream's source to have checked them (a relay it trusts)."""
    options = {
        "max_size": max_frame_size,
        "open_timeout": open_timeout,
        "compression": None,
        "proxy": None,
    }
    try:
        async with await _connect(stream_url(url, params), guard, options) as websocket:
            async for message in websocket:
                if isinstance(message, str):
                    raise DecodeError("event streams carry binary frames, got a text frame")
                event = decode_frame(message, max_frame_size, trusted=trusted)
                if isinstance(event, ErrorFrame):
                    raise StreamError(event.error, event.message)
                yield event
    except ConnectionClosedError as exc:
        # websockets enforces max_size itself and closes with 1009; that is an oversized frame.
        if exc.sent is not None and exc.sent.code == CloseCode.MESSAGE_TOO_BIG:
            raise DecodeError(f"a frame is larger than {max_frame_size} bytes") from exc
        raise
    except InvalidStatus as exc:
        raise _refusal(exc.response.status_code, exc.response.body) from exc


async def _connect(
    url: str, guard: AddressGuard | None, options: dict[str, Any]
) -> ClientConnection:
    if guard is None:
        return await connect(url, **options)
    async with asyncio.timeout(options["open_timeout"]):
        addresses = await guard.addresses(urlsplit(url).hostname or "")
    # `host` moves only the TCP connection: the Host header and TLS name stay the URL's.
    for address in addresses[:-1]:
        try:
            return await connect(url, host=address, **options)
        except OSError:
            continue
    return await connect(url, host=addresses[-1], **options)


def _refusal(status: int, body: bytes | bytearray | None) -> StreamError:
    """The StreamError for a refused handshake, from its XRPC error body when it has one."""
    error, message = status_name(status), None
    try:
        parsed = json.loads((body or b"")[:_MAX_REFUSAL_BODY])
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), str):
        error = parsed["error"]
        message = parsed.get("message") if isinstance(parsed.get("message"), str) else None
    return StreamError(error, message, status)

"""Serve any service's ASGI app with hypercorn, the way DESIGN.md "Running the services" says.

We bind the listening socket ourselves so `--port 0` yields a known port, hand it to hypercorn
by file descriptor, and print `listening on http://HOST:PORT` once the app's start-up (lifespan)
has completed: the socket is already listening then, so a client reading that line can connect
at once. Everything else goes to stderr.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, TextIO

from hypercorn.asyncio import serve
from hypercorn.config import Config

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

DEFAULT_HOST = "127.0.0.1"
GRACEFUL_SECONDS = 5.0
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _announce_on_startup(app: ASGIApp, line: str, out: TextIO) -> ASGIApp:
    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await app(scope, receive, send)
            return

        async def send_and_announce(message: Message) -> None:
            await send(message)
            if message["type"] == "lifespan.startup.complete":
                print(line, file=out, flush=True)

        await app(scope, receive, send_and_announce)

    return wrapped


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


async def _serve(app: ASGIApp, sock: socket.socket, out: TextIO) -> None:
    host, port = sock.getsockname()[:2]
    config = Config()
    # Hypercorn wraps the descriptor in its own socket object and closes it on shutdown.
    config.bind = [f"fd://{sock.detach()}"]
    config.graceful_timeout = GRACEFUL_SECONDS
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    line = f"listening on http://{_url_host(host)}:{port}"
    await serve(
        _announce_on_startup(app, line, out),  # type: ignore[arg-type]
        config,
        shutdown_trigger=stop.wait,
        mode="asgi",
    )


def serve_app(
    app: ASGIApp, host: str = DEFAULT_HOST, port: int = 0, out: TextIO | None = None
) -> None:
    """Serve `app` until SIGTERM or SIGINT; port 0 picks a free port. Logs go to stderr."""
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    asyncio.run(_serve(app, _listen(host, port), out or sys.stdout))

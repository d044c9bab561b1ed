"""Serve any service's ASGI app, the way DESIGN.md "Running the services" says.

We bind the listening socket ourselves so `--port 0` yields a known port, and print
`listening on http://HOST:PORT` once the app's start-up (lifespan) has completed: the socket is
already listening then, so a client reading that line can connect at once. Everything else goes
to stderr. SIGTERM and SIGINT stop the server gracefully, and the process exits 0.

Every app is served behind atcore.xrpc.failures.FailureMiddleware: an exception no handler
answered becomes a JSON 500 naming a request id and one log line, never a traceback per request
from the server. In a Starlette app it goes innermost among the app's middleware, inside
Starlette's own last-resort handler (which would answer in plain text and re-raise) and inside
CORS (so the 500 carries CORS headers too).

Every service is served by uvicorn unless `SKYLOFT_ASGI_SERVER` names another (read once, at
start-up):
- `uvicorn` (the default): httptools and the `websockets` library, on uvloop when installed;
  HTTP/1.1 keep-alive and websockets, with the SEND_FRAMES extension (runtime.ws_frames). It
  costs the least CPU per request of the servers measured (README, "Which ASGI server");
- `hypercorn`: HTTP/1.1 and HTTP/2, websockets through wsproto, TLS without a proxy.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import Any, Final, TextIO

from hypercorn.asyncio import serve
from hypercorn.config import Config
from starlette.applications import Starlette
from starlette.middleware import Middleware

from atcore.xrpc.failures import FailureMiddleware

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Runner = Callable[[Coroutine[Any, Any, None]], None]

DEFAULT_HOST = "127.0.0.1"
SERVER_ENV: Final = "SKYLOFT_ASGI_SERVER"
SERVERS: Final = ("hypercorn", "uvicorn")
DEFAULT_SERVER: Final = "uvicorn"
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
                # What start-up made (modules, lexicons, caches) lives as long as the process:
                # out of the collector's sight, a full collection scans only what serving made
                # since. bench/appview_reads.py --scale 0.25, four runs each, alternating:
                # getTimeline p99 93-105 ms -> 61-68 ms.
                gc.freeze()
                print(line, file=out, flush=True)

        await app(scope, receive, send_and_announce)

    return wrapped


def with_failure_middleware(app: ASGIApp) -> ASGIApp:
    """`app` answering escaped exceptions with FailureMiddleware (see the module docstring)."""
    if isinstance(app, Starlette) and app.middleware_stack is None:
        app.user_middleware.append(Middleware(FailureMiddleware))
        return app
    return FailureMiddleware(app)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def _hypercorn(app: ASGIApp, sock: socket.socket) -> None:
    config = Config()
    # Hypercorn wraps the descriptor in its own socket object and closes it on shutdown.
    config.bind = [f"fd://{sock.detach()}"]
    config.graceful_timeout = GRACEFUL_SECONDS
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    stop = _stop_on_signals()
    await serve(app, config, shutdown_trigger=stop.wait, mode="asgi")  # type: ignore[arg-type]


async def _uvicorn(app: ASGIApp, sock: socket.socket) -> None:
    try:
        import uvicorn
    except ImportError:
        raise SystemExit(f"{SERVER_ENV}=uvicorn: install uvicorn and httptools") from None

    from runtime.ws_frames import FramesProtocol

    class Server(uvicorn.Server):
        # Our own handlers stop it: uvicorn's would re-raise SIGTERM after a clean shutdown.
        @contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    config = uvicorn.Config(
        app,
        http="httptools",
        ws=FramesProtocol,
        lifespan="on",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=int(GRACEFUL_SECONDS),
        # Firehose frames are compressed by nobody (relays, the reference): no deflate.
        ws_per_message_deflate=False,
        ws_max_size=1 << 20,
    )
    server = Server(config)
    stop = _stop_on_signals()

    async def stop_when_asked() -> None:
        await stop.wait()
        server.should_exit = True

    stopper = asyncio.create_task(stop_when_asked())
    try:
        await server.serve(sockets=[sock])
    finally:
        stopper.cancel()
    if server.lifespan.should_exit and not server.started:
        raise SystemExit("the app failed to start")


def server_name(environ: Mapping[str, str]) -> str:
    """The ASGI server `SKYLOFT_ASGI_SERVER` names (DEFAULT_SERVER when unset)."""
    name = environ.get(SERVER_ENV, "").strip().lower() or DEFAULT_SERVER
    if name not in SERVERS:
        raise SystemExit(f"{SERVER_ENV} must be one of {', '.join(SERVERS)}, not {name!r}")
    return name


async def _serve(app: ASGIApp, sock: socket.socket, out: TextIO, server: str) -> None:
    host, port = sock.getsockname()[:2]
    app = with_failure_middleware(app)
    app = _announce_on_startup(app, f"listening on http://{_url_host(host)}:{port}", out)
    if server == "uvicorn":
        await _uvicorn(app, sock)
    else:
        await _hypercorn(app, sock)


def listen(host: str = DEFAULT_HOST, port: int = 0) -> socket.socket:
    """Bind and listen now (port 0 picks a free port), so the bound port is known before the app
    is built: a PDS names its own URL, port included, in the DID documents it registers."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family)


def serve_app(app: ASGIApp, sock: socket.socket, out: TextIO | None = None) -> None:
    """Serve `app` on the listening `sock` until SIGTERM or SIGINT, with the server
    `SKYLOFT_ASGI_SERVER` names (DEFAULT_SERVER when unset). Logs go to stderr."""
    server = server_name(os.environ)
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format=LOG_FORMAT,
    )
    runner: Runner = asyncio.run
    if server == "uvicorn":
        runner = _uvloop_run()
    runner(_serve(app, sock, out or sys.stdout, server))


def _uvloop_run() -> Runner:
    try:
        import uvloop
    except ImportError:
        return asyncio.run
    return uvloop.run

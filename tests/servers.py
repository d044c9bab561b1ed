"""Start a real `skyloft <service> serve` process on a free port for integration tests."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import uvicorn
from hypercorn.asyncio import serve
from hypercorn.config import Config

from runtime.ws_frames import FramesProtocol
from skyloft.services import ServiceFailed, ServiceProcess


@contextmanager
def running_service(
    service: str,
    data_dir: Path,
    *args: str,
    env: Mapping[str, str] | None = None,
    timeout: float = 30.0,
) -> Iterator[str]:
    """Yield the base URL of `skyloft <service> serve --port 0 --data-dir <data_dir> <args>`.

    The server's stderr goes to `<data_dir>/../<service>-<n>.log`, quoted when it fails. On
    exit the process is stopped by pid (SIGTERM, then SIGKILL) and must have exited cleanly.
    """
    process = ServiceProcess(service, data_dir, *args, env=env, timeout=timeout)
    try:
        yield process.url
    finally:
        status = process.stop()
    if status != 0:
        raise ServiceFailed(f"{service} exited with {status} on SIGTERM:\n{process.log_tail()}")


@asynccontextmanager
async def serving_in_loop(app: Any) -> AsyncIterator[str]:
    """Serve an ASGI app with hypercorn inside the test's own event loop, on 127.0.0.1 and a
    free port; yields its base URL and stops the server on exit."""
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = Config()
    config.bind = [f"fd://{sock.detach()}"]
    config.accesslog = None
    config.graceful_timeout = 1.0
    stop = asyncio.Event()
    server = asyncio.create_task(serve(app, config, shutdown_trigger=stop.wait, mode="asgi"))
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop.set()
        await asyncio.wait_for(server, 10)


class _InLoopUvicorn(uvicorn.Server):
    @contextmanager
    def capture_signals(self) -> Iterator[None]:  # the test's loop keeps its own handlers
        yield


@asynccontextmanager
async def serving_uvicorn_in_loop(app: Any) -> AsyncIterator[str]:
    """As serving_in_loop, with uvicorn set up as `runtime.serve` sets it up (SEND_FRAMES
    included); yields once the app's lifespan has started."""
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        http="httptools",
        ws=FramesProtocol,
        lifespan="on",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=1,
        ws_per_message_deflate=False,
        ws_max_size=1 << 20,
    )
    server = _InLoopUvicorn(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(10):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        sock.close()

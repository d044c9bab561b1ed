"""Start a real `skyloft <service> serve` process on a free port for integration tests."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

from hypercorn.asyncio import serve
from hypercorn.config import Config

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

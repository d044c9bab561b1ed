"""Start a real `skyloft <service> serve` process on a free port for integration tests."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

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

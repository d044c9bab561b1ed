"""Start a real `skyloft <service> serve` process on a free port for integration tests."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

LISTENING = "listening on "
STOP_SECONDS = 10.0


def _read_listening_line(proc: subprocess.Popen[bytes], timeout: float) -> str | None:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    buffer = b""
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        while b"\n" not in buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not selector.select(remaining):
                return None
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                return None
            buffer += chunk
    line = buffer.split(b"\n", 1)[0].decode()
    return line[len(LISTENING) :] if line.startswith(LISTENING) else None


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


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
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir.parent / f"{service}-{data_dir.name}.log"
    command = [sys.executable, "-m", "skyloft", service, "serve", "--port", "0"]
    command += ["--data-dir", str(data_dir), *args]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=log,
            env={**os.environ, **(env or {})},
        )
    try:
        url = _read_listening_line(proc, timeout)
        if url is None:
            raise RuntimeError(f"{service} did not start:\n{log_path.read_text()[-4000:]}")
        yield url
    finally:
        _stop(proc)
        assert proc.stdout is not None
        proc.stdout.close()
    if proc.returncode != 0:
        raise RuntimeError(
            f"{service} exited with {proc.returncode} on SIGTERM:\n{log_path.read_text()[-4000:]}"
        )

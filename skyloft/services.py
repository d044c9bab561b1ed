"""Start `skyloft <service> serve` as a child process and stop it by pid.

Shared by `skyloft devnet` and the integration tests: a child runs on a free port (`--port 0`),
prints `listening on http://HOST:PORT` once it accepts connections, logs to a file, and is
stopped with SIGTERM (then SIGKILL after a grace period).
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

LISTENING = "listening on "
STOP_SECONDS = 10.0


class ServiceFailed(RuntimeError):
    """A service did not start, or did not stop cleanly; the message quotes its log."""


class ServiceProcess:
    """One running service: its URL, its process, and where its log goes."""

    def __init__(
        self,
        service: str,
        data_dir: Path,
        *args: str,
        port: int = 0,
        env: Mapping[str, str] | None = None,
        log_path: Path | None = None,
        timeout: float = 30.0,
    ) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.service = service
        self._terminated = False
        self.log_path = log_path or data_dir.parent / f"{service}-{data_dir.name}.log"
        command = [sys.executable, "-m", "skyloft", service, "serve", "--port", str(port)]
        command += ["--data-dir", str(data_dir), *args]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=log, env={**os.environ, **(env or {})}
            )
        url = _read_listening_line(self.proc, timeout)
        if url is None:
            self.stop()
            raise ServiceFailed(f"{service} did not start:\n{self.log_tail()}")
        self.url = url

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to flush or close anything (crash tests)."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def terminate(self) -> None:
        """SIGTERM once, without waiting: lets several services shut down side by side."""
        if self.proc.poll() is None and not self._terminated:
            os.kill(self.proc.pid, signal.SIGTERM)
            self._terminated = True

    def stop(self) -> int:
        """SIGTERM, then SIGKILL after STOP_SECONDS; returns the exit status."""
        self.terminate()
        if self.proc.poll() is None:
            try:
                self.proc.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return self.proc.returncode


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

"""A `skyloft pds serve` process that a test may kill -9 (tests/servers.py stops by SIGTERM)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.pds.conftest import pds_env
from tests.servers import _read_listening_line


class PdsProcess:
    def __init__(self, proc: subprocess.Popen[bytes], url: str) -> None:
        self.proc = proc
        self.url = url

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to flush or close anything."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


@contextmanager
def pds_process(data_dir: Path, plc_url: str) -> Iterator[PdsProcess]:
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir.parent / f"pds-{data_dir.name}.log"
    command = [sys.executable, "-m", "skyloft", "pds", "serve", "--port", "0"]
    command += ["--data-dir", str(data_dir)]
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=log, env={**os.environ, **pds_env(plc_url)}
        )
    try:
        url = _read_listening_line(proc, 30.0)
        if url is None:
            raise RuntimeError(f"pds did not start:\n{log_path.read_text()[-4000:]}")
        yield PdsProcess(proc, url)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()

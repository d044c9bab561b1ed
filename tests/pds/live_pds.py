"""A `skyloft pds serve` process that a test may kill -9 (tests/servers.py stops by SIGTERM)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from skyloft.services import ServiceProcess
from tests.pds.conftest import pds_env


@contextmanager
def pds_process(data_dir: Path, plc_url: str) -> Iterator[ServiceProcess]:
    process = ServiceProcess("pds", data_dir, env=pds_env(plc_url))
    try:
        yield process
    finally:
        process.stop()

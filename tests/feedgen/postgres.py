"""A real PostgreSQL server for the feed-generator store tests: initdb into a temporary
directory, started on a free 127.0.0.1 port, a fresh database per test, stopped at the end.

PostgreSQL refuses to run as root: as root, the server runs as the `postgres` user."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

USER = "skyloft"


def _as_server_user(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_postgres() -> Iterator[str]:
    """The server's base URL (`postgresql://skyloft@127.0.0.1:PORT`)."""
    if shutil.which("initdb") is None or shutil.which("pg_ctl") is None:
        pytest.skip("PostgreSQL's initdb and pg_ctl are not installed")
    # Not under pytest's tmp_path: the server's user must be able to reach the directory.
    root = Path(tempfile.mkdtemp(prefix="skyloft-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
    data = root / "data"
    init = ["initdb", "-D", str(data), "-A", "trust", "-U", USER, "--no-sync", "-E", "UTF8"]
    subprocess.run(_as_server_user(init), check=True, capture_output=True)
    port = _free_port()
    options = f"-p {port} -h 127.0.0.1 -k {root} -F"
    start = ["pg_ctl", "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start"]
    subprocess.run(_as_server_user(start), check=True, capture_output=True)
    try:
        yield f"postgresql://{USER}@127.0.0.1:{port}"
    finally:
        stop = ["pg_ctl", "-D", str(data), "-m", "fast", "-w", "stop"]
        subprocess.run(_as_server_user(stop), check=True, capture_output=True)
        shutil.rmtree(root)


def fresh_database(server: str, name: str) -> str:
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{server}/{name}"

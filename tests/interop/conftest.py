"""Interop fixtures: a real PLC and PDS process, and the official Node clients in tests/js."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.pds.conftest import pds_env, plc_url  # noqa: F401 (plc_url is a fixture)
from tests.servers import running_service

JS = Path(__file__).resolve().parents[1] / "js"
PASSWORD = "correct horse battery staple"
# Known to the tests so they can mint tokens the PDS will accept (or find expired).
JWT_SECRET = "interop-jwt-secret"


def run_node(script: str, payload: dict[str, Any], timeout: float = 30.0) -> Any:
    """Run `tests/js/<script>` with `payload` as JSON on stdin; its stdout's JSON."""
    done = subprocess.run(
        [node_binary(), str(JS / script)],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"{script} exited {done.returncode}:\n{done.stderr[-4000:]}"
    return json.loads(done.stdout)


def node_binary() -> str:
    """`node`, with the pinned clients installed; skips where the machine has no Node."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed (the official-client interop tests need it)")
    if not (JS / "node_modules" / "@atproto" / "sync").is_dir():
        pytest.fail("tests/js/node_modules is missing: run ./scripts/setup test")
    return node


@pytest.fixture(scope="module")
def pds_url(plc_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:  # noqa: F811
    """One `skyloft pds serve` (dev mode, on the session's PLC) per test module."""
    data = tmp_path_factory.mktemp("interop-pds") / "data"
    with running_service("pds", data, env=pds_env(plc_url, PDS_JWT_SECRET=JWT_SECRET)) as url:
        yield url

"""`skyloft relay serve` runs on uvicorn unless SKYLOFT_ASGI_SERVER names another server
(runtime/serve.py), and on hypercorn when it names that one."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.relay.conftest import relay_env
from tests.servers import running_service


@pytest.mark.parametrize(("setting", "server"), [("", "uvicorn"), ("hypercorn", "hypercorn")])
def test_relay_server(tmp_path: Path, plc_url: str, setting: str, server: str) -> None:
    env = relay_env(plc_url, SKYLOFT_ASGI_SERVER=setting)
    with running_service("relay", tmp_path / "relay", env=env) as url:
        response = httpx.get(f"{url}/", timeout=10)
    assert response.status_code == 200
    # The app names itself in a `server` header too; the ASGI server adds its own.
    names = response.headers.get_list("server")
    assert any(name.startswith(server) for name in names), names

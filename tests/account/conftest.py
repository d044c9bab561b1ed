"""Account tool fixtures: a PLC directory, a relay and two PDS processes; XRPC helpers."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from skyloft.services import ServiceProcess
from tests.pds.conftest import PASSWORD, pds_env, plc_url  # noqa: F401
from tests.relay.conftest import relay_env

NOW = "2024-05-01T12:00:00.000Z"


class Client:
    """One account's XRPC calls on one PDS."""

    def __init__(self, http: httpx.AsyncClient, did: str = "", token: str = "") -> None:
        self.http, self.did, self.token = http, did, token

    async def call(self, nsid: str, body: Any = None, **params: Any) -> Any:
        headers = {"authorization": f"Bearer {self.token}"} if self.token else {}
        if isinstance(body, bytes):
            headers["content-type"] = "image/png"
            r = await self.http.post(f"/xrpc/{nsid}", content=body, headers=headers)
        elif body is None:
            r = await self.http.get(f"/xrpc/{nsid}", params=params, headers=headers)
        else:
            r = await self.http.post(f"/xrpc/{nsid}", json=body, headers=headers)
        assert r.status_code == 200, r.text
        return r.json() if r.content else None

    async def post(self, nsid: str) -> None:
        """A procedure without input (activateAccount, requestPlcOperationSignature)."""
        headers = {"authorization": f"Bearer {self.token}"}
        r = await self.http.post(f"/xrpc/{nsid}", headers=headers)
        assert r.status_code == 200, r.text

    async def signup(self, handle: str) -> Client:
        body = {"handle": handle, "email": f"{handle}@example.com", "password": PASSWORD}
        made = await Client(self.http).call("com.atproto.server.createAccount", body)
        return Client(self.http, made["did"], made["accessJwt"])

    async def create(self, record: dict[str, Any], rkey: str | None = None) -> dict[str, Any]:
        body = {"repo": self.did, "collection": record["$type"], "record": record}
        if rkey is not None:
            body["rkey"] = rkey
        created: dict[str, Any] = await self.call("com.atproto.repo.createRecord", body)
        return created

    async def upload(self, data: bytes) -> dict[str, Any]:
        blob: dict[str, Any] = (await self.call("com.atproto.repo.uploadBlob", data))["blob"]
        return blob


def read_until(proc: subprocess.Popen[str], pattern: str, seen: list[str]) -> re.Match[str]:
    assert proc.stderr is not None
    for line in proc.stderr:
        seen.append(line)
        found = re.search(pattern, line)
        if found:
            return found
    raise AssertionError(f"no {pattern!r} in:\n{''.join(seen)}")


def mailed_code(log: Path, after: int) -> str:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        codes = re.findall(r"Your code: (\S+)", log.read_text()[after:])
        if codes:
            return codes[-1]
        time.sleep(0.1)
    raise AssertionError("the old PDS logged no code")


@dataclass(frozen=True)
class Network:
    old: str
    new: str
    relay: str


@pytest.fixture
def servers(tmp_path: Path, plc_url: str) -> Iterator[Network]:  # noqa: F811
    """A relay and two PDSes that ask it to crawl them; all stopped at once at the end, so
    no PDS waits out its grace period for the relay's subscription."""
    services: list[ServiceProcess] = []
    try:
        relay = ServiceProcess("relay", tmp_path / "relay", env=relay_env(plc_url))
        services.append(relay)
        crawled = pds_env(plc_url, PDS_CRAWLERS=relay.url)
        for name in ("old", "new"):
            services.append(ServiceProcess("pds", tmp_path / name, env=crawled))
        yield Network(services[1].url, services[2].url, relay.url)
    finally:
        for service in services:
            service.terminate()
        for service in services:
            assert service.stop() == 0, service.log_tail()


@pytest.fixture
async def clients(servers: Network) -> AsyncIterator[tuple[Client, Client]]:
    async with AsyncExitStack() as stack:
        old_http = await stack.enter_async_context(httpx.AsyncClient(base_url=servers.old))
        new_http = await stack.enter_async_context(httpx.AsyncClient(base_url=servers.new))
        yield Client(old_http), Client(new_http)

"""Appview test fixtures: a real PLC process, a scriptable upstream standing in for the relay
(tests.relay.fake_pds: accounts whose commits are built and signed with atcore), and the
appview app in-process with every response checked against its lexicon.

Every test that takes `network` runs twice, once per store (`store`): on SQLite in its
tmp_path, and on the PostgreSQL server at 127.0.0.1:5432 (scripts/test-services starts one
when none runs) in a fresh schema of its own, dropped at the end. `appview_config` picks the
store up from the environment the `store` fixture sets.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import sql

from appview.app import create_app
from appview.config import AppviewConfig
from appview.context import AppviewContext
from atcore.datamodel import from_json
from atcore.frames import CommitEvent
from atcore.identity.plc_client import PlcClient
from atcore.jwt import encode_es
from tests.relay.fake_pds import FakeAccount, FakePds, serve_fake_pds
from tests.servers import running_service


@pytest.fixture(scope="session")
def plc_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_service("plc", tmp_path_factory.mktemp("appview-plc") / "data") as url:
        yield url


class Appview:
    """The in-process appview, its upstream and helpers to write and read through them."""

    def __init__(self, client: httpx.AsyncClient, ctx: AppviewContext, upstream: FakePds) -> None:
        self.client = client
        self.ctx = ctx
        self.upstream = upstream

    async def emit(self, event: Any) -> int:
        """Send an event down the firehose and wait until the appview has applied it."""
        seq = await self.upstream.emit(event)
        await self.applied(seq)
        return seq

    async def applied(self, seq: int) -> None:
        ingest = self.ctx.ingest
        assert ingest is not None
        try:
            async with asyncio.timeout(APPLY_TIMEOUT):
                await ingest.wait_for(lambda: ingest.idle(seq))
        except TimeoutError:
            tasks = {task.get_name(): task for task in ingest._tasks}
            ended = {name: repr(task.exception()) for name, task in tasks.items() if task.done()}
            raise AssertionError(
                f"seq {seq} not applied in {APPLY_TIMEOUT} s: received {ingest.received},"
                f" applied {ingest.applied_seq}, ended tasks {ended}"
            ) from None

    async def write(self, account: FakeAccount, writes: dict[str, Any]) -> CommitEvent:
        """Commit `writes` (path -> record in JSON form, None deletes) and wait till indexed."""
        event = account.commit({p: None if v is None else from_json(v) for p, v in writes.items()})
        await self.emit(event)
        return event

    def token(self, account: FakeAccount, nsid: str, **claims: Any) -> str:
        now = int(time.time())
        payload = {"iss": account.did, "aud": self.ctx.config.did, "exp": now + 60, "iat": now}
        return encode_es({**payload, "lxm": nsid, **claims}, account.key)

    async def get(
        self, nsid: str, viewer: FakeAccount | None = None, **params: Any
    ) -> httpx.Response:
        headers = {}
        if viewer is not None:
            headers["authorization"] = f"Bearer {self.token(viewer, nsid)}"
        return await self.client.get(f"/xrpc/{nsid}", params=params, headers=headers)

    async def ok(self, nsid: str, viewer: FakeAccount | None = None, **params: Any) -> Any:
        response = await self.get(nsid, viewer, **params)
        assert response.status_code == 200, response.text
        return response.json()


@asynccontextmanager
async def serve_appview(config: AppviewConfig, upstream: FakePds) -> AsyncIterator[Appview]:
    app = create_app(config, validate_output=True, backoff_base=0.05)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://appview.test") as http:
            yield Appview(http, app.state.ctx, upstream)


Start = Callable[..., Any]

# Long enough for a loaded CI machine; a hang fails with what the indexer saw.
APPLY_TIMEOUT = 60.0
POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
STORE_ENV = ("BSKY_DB_POSTGRES_URL", "BSKY_DB_POSTGRES_SCHEMA")


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Which store the test's appview uses: SQLite, or a fresh PostgreSQL schema."""
    for name in STORE_ENV:
        monkeypatch.delenv(name, raising=False)
    if request.param == "sqlite":
        yield "sqlite"
        return
    try:
        admin = psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL at {POSTGRES_URL} (scripts/test-services starts one): {exc}")
    schema = f"test_{uuid.uuid4().hex}"
    monkeypatch.setenv("BSKY_DB_POSTGRES_URL", POSTGRES_URL)
    monkeypatch.setenv("BSKY_DB_POSTGRES_SCHEMA", schema)
    try:
        yield "postgres"
    finally:
        admin.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
        admin.close()


@pytest.fixture
async def network(
    tmp_path: Path, plc_url: str, store: str
) -> AsyncIterator[tuple[FakePds, str, PlcClient]]:
    upstream = FakePds()
    async with serve_fake_pds(upstream) as url, httpx.AsyncClient() as http:
        yield upstream, url, PlcClient(plc_url, http)


def appview_config(tmp_path: Path, plc_url: str, upstream_url: str, **env: str) -> AppviewConfig:
    base = {
        "BSKY_DEV_MODE": "true",
        "BSKY_DID_PLC_URL": plc_url,
        "BSKY_REPO_PROVIDER": upstream_url,
        **{name: os.environ[name] for name in STORE_ENV if name in os.environ},
    }
    return AppviewConfig.load({**base, **env}, data_dir=str(tmp_path / "appview"))

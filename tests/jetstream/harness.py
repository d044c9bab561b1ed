"""An in-process Jetstream app, served by uvicorn (or hypercorn) in the test's loop, whose log
the test feeds directly."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from atcore import cbor
from atcore.cid import cid_for_cbor
from jetstream.app import create_app
from jetstream.config import JetstreamConfig
from jetstream.context import JetstreamContext
from jetstream.events import Entry, account_json, commit_json, record_json
from jetstream.log import EventLog
from tests.jetstream.conftest import FOLLOW, LIKE, POST
from tests.servers import serving_in_loop, serving_uvicorn_in_loop

DIDS = [f"did:plc:{'abcdefghijklmnopqrstuvwx'[i] * 24}" for i in range(4)]
COLLECTIONS = [POST, LIKE, FOLLOW, "app.bsky.graph.block"]


class Stream:
    def __init__(self, url: str, ctx: JetstreamContext) -> None:
        self.url = url
        self.ctx = ctx
        self.events: EventLog = ctx.events

    def ws(self, query: str = "") -> str:
        return self.url.replace("http://", "ws://") + "/subscribe" + (f"?{query}" if query else "")

    def add(self, count: int, size: int = 0) -> list[Entry]:
        entries = []
        for i in range(count):
            key = self.events.stamp()
            did, collection = DIDS[i % 4], COLLECTIONS[(i // 4) % 4]
            record = {"$type": collection, "n": i, "pad": "p" * size}
            block = cbor.encode(record)
            cid = cid_for_cbor(block)
            body = commit_json(
                did, key, "3l", "create", collection, f"r{key}", record_json(block), cid
            )
            entry = Entry(key, "commit", did, collection, body)
            if i % 50 == 49:
                body = account_json(did, key, i, "2025-01-01T00:00:00Z", True, None)
                entry = Entry(key, "account", did, None, body)
            entries.append(entry)
        self.events.append(entries, None)
        return entries


@asynccontextmanager
async def start_stream(
    tmp_path: Path, server: str = "uvicorn", **settings: Any
) -> AsyncIterator[Stream]:
    env = {"JETSTREAM_WS_URL": "ws://127.0.0.1:9/xrpc/com.atproto.sync.subscribeRepos"}
    config = replace(JetstreamConfig.load(env, data_dir=str(tmp_path / "js")), **settings)
    app = create_app(config, backoff_base=60)
    serving = serving_in_loop if server == "hypercorn" else serving_uvicorn_in_loop
    async with serving(app) as url:
        async with asyncio.timeout(10):  # the server runs the app's lifespan
            while getattr(app.state, "ctx", None) is None:
                await asyncio.sleep(0.01)
        yield Stream(url, app.state.ctx)

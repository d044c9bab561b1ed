"""An appview stand-in for proxy tests: a small Starlette app on a free 127.0.0.1 port (served
by hypercorn in its own thread) that checks each service-auth JWT it receives against the
caller's DID document from our PLC (signature, aud, lxm, exp) and records what it saw."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from hypercorn.asyncio import serve
from hypercorn.config import Config
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from atcore.identity.diddoc import parse_did_document
from atcore.jwt import decode
from atcore.syntax.did import Did
from tests.pds.smtp_server import free_port


@dataclass
class Seen:
    nsid: str
    claims: dict[str, Any] | None
    verified: bool
    body: bytes
    headers: dict[str, str]


@dataclass
class StandIn:
    plc_url: str
    did: str
    url: str = ""
    # Other service DIDs (atproto-proxy targets) whose tokens it also accepts.
    also: set[str] = field(default_factory=set)
    seen: list[Seen] = field(default_factory=list)

    async def verify(self, request: Request, nsid: str) -> tuple[dict[str, Any] | None, bool]:
        header = request.headers.get("authorization", "")
        if not header.startswith("Bearer "):
            return None, False
        jwt = decode(header[7:])
        claims = jwt.payload
        async with httpx.AsyncClient() as client:
            doc = (await client.get(f"{self.plc_url}/{claims['iss']}")).json()
        key = parse_did_document(doc, Did(claims["iss"])).require_signing_key()
        jwt.verify_key(key)  # raises on a bad signature
        now = time.time()
        ok = claims["lxm"] == nsid and now < claims["exp"] < now + 120
        return claims, ok and claims["aud"].partition("#")[0] in {self.did, *self.also}

    async def endpoint(self, request: Request) -> Response:
        nsid = request.path_params["nsid"]
        claims, verified = await self.verify(request, nsid)
        body = await request.body()
        self.seen.append(Seen(nsid, claims, verified, body, dict(request.headers)))
        cursor = request.query_params.get("cursor")
        if cursor == "bad":
            return JSONResponse({"error": "BadCursor", "message": "no"}, status_code=400)
        if cursor == "boom":
            return JSONResponse({"error": "Oops"}, status_code=500)
        if cursor == "lone":  # lone surrogates, escaped as JSON allows
            body = b'{"error": "\\ud800", "message": "x\\udc00"}'
            return Response(body, status_code=400, media_type="application/json")
        if nsid == "com.atproto.repo.getRecord":  # a feed generator record, for getFeed
            rkey = request.query_params["rkey"]
            if rkey == "huge":
                return JSONResponse({"value": {"did": "did:web:gen.test", "pad": "x" * 300_000}})
            if rkey == "gen":
                return JSONResponse({"value": {"did": "did:web:gen.test"}})
            return JSONResponse({"error": "RecordNotFound"}, status_code=400)
        if nsid == "app.bsky.actor.getProfile":
            actor = request.query_params["actor"]
            profile = {
                "did": claims["iss"] if claims else "did:plc:unknown",
                "handle": actor if not actor.startswith("did:") else "someone.test",
                "displayName": "Stand-in",
            }
            headers = {"atproto-repo-rev": "3kabc", "content-language": "en"}
            return JSONResponse(profile, headers=headers)
        return JSONResponse({"nsid": nsid, "echo": body.decode(), "query": str(request.url.query)})


@contextmanager
def appview_standin(plc_url: str, did: str = "did:web:appview.test") -> Iterator[StandIn]:
    standin = StandIn(plc_url, did)
    app = Starlette(routes=[Route("/xrpc/{nsid}", standin.endpoint, methods=["GET", "POST"])])
    port = free_port()
    standin.url = f"http://127.0.0.1:{port}"
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    started = threading.Event()

    async def main() -> None:
        started.set()
        await serve(app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    started.wait(10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{standin.url}/xrpc/ping", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.05)
    standin.seen.clear()
    try:
        yield standin
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()

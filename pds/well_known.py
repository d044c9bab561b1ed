"""Plain HTTP routes beside XRPC: the service DID document (spec-did.md did:web), handle
resolution over HTTPS for hosted handles (spec-handle.md), health and a banner."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Final

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from atcore.identity.plc import PDS_SERVICE, PDS_SERVICE_TYPE
from atcore.syntax.handle import is_valid_handle
from pds.context import ctx_of

BANNER: Final = """\
This is an AT Protocol Personal Data Server (PDS), run by Skyloft.

Most API routes are under /xrpc/
"""
ROBOTS: Final = "# Crawling the public API is allowed\nUser-agent: *\nAllow: /\n"


def _version() -> str:
    try:
        return version("skyloft")
    except PackageNotFoundError:
        return "unknown"


async def did_json(request: Request) -> Response:
    ctx = ctx_of(request)
    return JSONResponse(
        {
            "@context": ["https://www.w3.org/ns/did/v1"],
            "id": ctx.service_did,
            "service": [
                {
                    "id": f"#{PDS_SERVICE}",
                    "type": PDS_SERVICE_TYPE,
                    "serviceEndpoint": ctx.config.public_url,
                }
            ],
        }
    )


async def atproto_did(request: Request) -> Response:
    """The DID of the hosted handle named by the Host header (port ignored)."""
    ctx = ctx_of(request)
    host = request.headers.get("host", "").rpartition(":")[0] or request.headers.get("host", "")
    if not is_valid_handle(host):
        return PlainTextResponse("User not found", status_code=404)
    account = await ctx.accounts.by_handle(host)
    if account is None or account.takedown_ref is not None:
        return PlainTextResponse("User not found", status_code=404)
    return PlainTextResponse(account.did)


async def health(request: Request) -> Response:
    return JSONResponse({"version": _version()})


async def banner(request: Request) -> Response:
    return PlainTextResponse(BANNER)


async def robots(request: Request) -> Response:
    return PlainTextResponse(ROBOTS)


ROUTES: Final = [
    Route("/", banner),
    Route("/robots.txt", robots),
    Route("/.well-known/did.json", did_json),
    Route("/.well-known/atproto-did", atproto_did),
    Route("/xrpc/_health", health),
]

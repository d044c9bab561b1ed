"""Who is asking: the service-auth JWT the viewer's PDS attaches when it proxies app.bsky.*
(bskydocs-service-auth.md), verified by atcore.service_auth with `aud` this appview's DID
(bare, or naming its `#bsky_appview`/`#bsky_notif` service) and `lxm` the method called."""

from __future__ import annotations

from starlette.requests import HTTPConnection

from appview.context import ctx_of
from atcore.service_auth import BadJwtAudience, verify_service_jwt
from atcore.xrpc.errors import AuthRequired

_SERVICE_IDS = ("", "#bsky_appview", "#bsky_notif")


async def optional_viewer(conn: HTTPConnection) -> str | None:
    """The viewer's DID when a bearer token is presented (and valid), else None."""
    header = conn.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthRequired("Unexpected authorization type")
    ctx = ctx_of(conn)
    method = conn.url.path.removeprefix("/xrpc/")
    claims = await verify_service_jwt(
        token.strip(), audience=None, lxm=method, documents=ctx.resolver
    )
    if claims.aud not in {ctx.config.did + suffix for suffix in _SERVICE_IDS}:
        raise BadJwtAudience("jwt audience does not match service did")
    return claims.did


async def viewer_required(conn: HTTPConnection) -> str:
    viewer = await optional_viewer(conn)
    if viewer is None:
        raise AuthRequired("Authentication Required")
    return viewer

"""Who is asking: the service-auth JWT the viewer's PDS attaches when it proxies app.bsky.*
(bskydocs-service-auth.md), verified by atcore.service_auth with `aud` this appview's DID
(bare, or naming its `#bsky_appview`/`#bsky_notif` service) and `lxm` the method called;
a repeated token's signature is not checked again while the issuer's key is unchanged
(atcore.service_auth.ServiceTokens)."""

from __future__ import annotations

from starlette.requests import HTTPConnection

from appview.context import ctx_of
from atcore.service_auth import BadJwtAudience, BadJwtLexiconMethod
from atcore.xrpc.errors import AuthRequired

_SERVICE_IDS = ("", "#bsky_appview", "#bsky_notif")
FEED_METHODS = ("app.bsky.feed.getFeedSkeleton", "app.bsky.feed.getFeed")


def _bearer(conn: HTTPConnection) -> str | None:
    header = conn.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthRequired("Unexpected authorization type")
    return token.strip()


async def optional_viewer(conn: HTTPConnection) -> str | None:
    """The viewer's DID when a bearer token is presented (and valid), else None."""
    token = _bearer(conn)
    if token is None:
        return None
    ctx = ctx_of(conn)
    method = conn.url.path.removeprefix("/xrpc/")
    claims = await ctx.tokens.verify(token, audience=None, lxm=method)
    if claims.aud not in {ctx.config.did + suffix for suffix in _SERVICE_IDS}:
        raise BadJwtAudience("jwt audience does not match service did")
    return claims.did


async def viewer_required(conn: HTTPConnection) -> str:
    viewer = await optional_viewer(conn)
    if viewer is None:
        raise AuthRequired("Authentication Required")
    return viewer


async def feed_viewer(conn: HTTPConnection) -> str | None:
    """The viewer of app.bsky.feed.getFeed. The viewer's PDS mints that token for the feed
    generator (`aud` its DID, `lxm` getFeedSkeleton) and the appview passes it on, so, as the
    reference, the audience is not checked here (the generator checks it) and either method
    is accepted."""
    token = _bearer(conn)
    if token is None:
        return None
    claims = await ctx_of(conn).tokens.verify(token, audience=None, lxm=None)
    if claims.lxm not in FEED_METHODS:
        raise BadJwtLexiconMethod(f'bad jwt lexicon method ("lxm"). must match: {FEED_METHODS}')
    return claims.did

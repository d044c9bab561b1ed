"""The feed generator's XRPC methods: `app.bsky.feed.getFeedSkeleton` and
`app.bsky.feed.describeFeedGenerator` (bskydocs-starter-custom-feeds.md; bskydocs-service-auth.md).

A request may carry the viewer's service-auth token (minted by their PDS for this service's DID
and this method): it is verified (signature against the issuer's DID document, audience,
method, expiry; any failure is a 401) and the viewer's DID goes to the feed's personalised
function. Without a token the public skeleton is served, as the starter kit does.

Cursors are opaque and stable: the (rank, URI) of the last entry sent, so posts arriving
meanwhile never shift a page, tagged with a hash of the feed and the viewer, so a cursor from
another feed (or another viewer's page) is refused with a 400 rather than misread.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any, Final

from starlette.requests import HTTPConnection

from atcore.service_auth import verify_service_jwt
from atcore.xrpc.errors import AuthRequired, InvalidRequest
from atcore.xrpc.router import Methods, XrpcRequest, app_state
from feedgen.sdk import Page, Ranked

GET_FEED_SKELETON: Final = "app.bsky.feed.getFeedSkeleton"
MAX_CURSOR: Final = 1024

xrpc = Methods()


async def viewer_auth(conn: HTTPConnection) -> str | None:
    """The verified viewer DID of a request with a bearer token, None without one."""
    header = conn.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthRequired("expected a Bearer service-auth token", error="BadJwt")
    ctx = app_state(conn).ctx
    verified = await verify_service_jwt(
        token.strip(), audience=ctx.service_did, lxm=GET_FEED_SKELETON, documents=ctx.resolver
    )
    return str(verified.did)


@xrpc.query(GET_FEED_SKELETON, auth=viewer_auth)
async def get_feed_skeleton(req: XrpcRequest) -> dict[str, Any]:
    ctx = app_state(req).ctx
    if req.params["feed"] != ctx.feed_uri:
        raise InvalidRequest("this service does not serve that feed", error="UnknownFeed")
    viewer: str | None = req.auth
    personal = ctx.feed.personaliser
    tag = cursor_tag(ctx.feed_uri, viewer if personal is not None else None)
    page = Page(req.params.get("limit", 50), decode_cursor(req.params.get("cursor"), tag))
    if personal is not None:
        entries = await ctx.store.read(lambda reader: personal(viewer, reader, page))
    else:
        entries = await ctx.store.read(lambda reader: reader.ranked(page))
    entries = entries[: page.limit]
    body: dict[str, Any] = {"feed": [{"post": entry.uri} for entry in entries]}
    if len(entries) == page.limit:
        body["cursor"] = encode_cursor(entries[-1], tag)
    return body


@xrpc.query("app.bsky.feed.describeFeedGenerator")
async def describe_feed_generator(req: XrpcRequest) -> dict[str, Any]:
    ctx = app_state(req).ctx
    return {"did": ctx.service_did, "feeds": [{"uri": ctx.feed_uri}]}


def cursor_tag(feed_uri: str, viewer: str | None) -> str:
    return hashlib.sha256(f"{feed_uri} {viewer or ''}".encode()).hexdigest()[:12]


def encode_cursor(entry: Ranked, tag: str) -> str:
    text = f"{tag}:{entry.rank!r}:{entry.uri}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, tag: str) -> Ranked | None:
    if cursor is None:
        return None
    if len(cursor) > MAX_CURSOR:
        raise InvalidRequest("malformed cursor")
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        cursor_tag, rank, uri = text.split(":", 2)
        position = Ranked(float(rank), uri)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidRequest("malformed cursor") from None
    if cursor_tag != tag:
        raise InvalidRequest("the cursor is from another feed")
    return position

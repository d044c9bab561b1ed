"""app.bsky.feed.getFeed through the PDS (bskydocs-custom-feeds.md, bskydocs-service-auth.md):
the viewer's token for it names the feed generator, not the appview. As the reference PDS, the
feed's generator record is read from the appview (com.atproto.repo.getRecord) and the proxied
call carries a service-auth JWT with `aud` the generator's service DID and `lxm`
app.bsky.feed.getFeedSkeleton; the appview passes that token on to the generator, which checks
it."""

from __future__ import annotations

import json
from typing import Final

import httpx
from starlette.requests import Request

from atcore.errors import IdentityError, InvalidSyntax
from atcore.identity.fetch import read_capped
from atcore.syntax.aturi import parse_aturi
from atcore.syntax.did import is_valid_did
from atcore.xrpc.errors import InvalidRequest, UpstreamFailure
from pds.context import AppContext

FEED_METHOD: Final = "app.bsky.feed.getFeed"
SKELETON_METHOD: Final = "app.bsky.feed.getFeedSkeleton"
TIMEOUT: Final = httpx.Timeout(10.0)
MAX_RECORD_BYTES: Final = 256 * 1024


async def feed_audience(ctx: AppContext, request: Request) -> tuple[str, str]:
    """(aud, lxm) of the token to send with a getFeed call (wherever it is proxied): the feed
    generator's DID and getFeedSkeleton, the record read from the configured appview. 400
    UnknownFeed when the appview has no record naming a DID."""
    feed = request.query_params.get("feed")
    try:
        uri = parse_aturi(feed or "")
    except InvalidSyntax:
        raise InvalidRequest("feed must be an at-uri of a feed generator record") from None
    if uri.collection is None or uri.rkey is None:
        raise InvalidRequest("feed must be an at-uri of a feed generator record")
    appview = ctx.config.appview_url
    params = {"repo": uri.authority, "collection": uri.collection, "rkey": uri.rkey}
    try:
        async with ctx.http.stream(
            "GET",
            f"{appview}/xrpc/com.atproto.repo.getRecord",
            params=params,
            headers={"accept-encoding": "identity"},
            timeout=TIMEOUT,
        ) as response:
            body = await read_capped(response, MAX_RECORD_BYTES)
    except (httpx.HTTPError, IdentityError):
        raise UpstreamFailure("could not fetch the feed's record from the appview") from None
    did = None
    if response.status_code == 200:
        try:
            value = json.loads(body).get("value")
        except (ValueError, AttributeError):
            value = None
        did = value.get("did") if isinstance(value, dict) else None
    if not isinstance(did, str) or not is_valid_did(did):
        raise InvalidRequest("could not resolve feed did", "UnknownFeed")
    return did, SKELETON_METHOD

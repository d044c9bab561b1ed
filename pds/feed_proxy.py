"""app.bsky.feed.getFeed through the PDS (bskydocs-custom-feeds.md, bskydocs-service-auth.md):
the viewer's token for it names the feed generator, not the appview. As the reference PDS, the
feed's generator record is read from the appview (com.atproto.repo.getRecord) and the proxied
call carries a service-auth JWT with `aud` the generator's service DID and `lxm`
app.bsky.feed.getFeedSkeleton; the appview passes that token on to the generator, which checks
it."""

from __future__ import annotations

import json
from typing import Final

from starlette.requests import Request

from atcore.errors import InvalidSyntax
from atcore.syntax.aturi import parse_aturi
from atcore.syntax.did import is_valid_did
from atcore.xrpc.client import XrpcClient, XrpcClientError
from atcore.xrpc.errors import InvalidRequest, UpstreamFailure
from pds.context import AppContext

FEED_METHOD: Final = "app.bsky.feed.getFeed"
SKELETON_METHOD: Final = "app.bsky.feed.getFeedSkeleton"
GET_RECORD: Final = "com.atproto.repo.getRecord"
TIMEOUT: Final = 10.0
MAX_RECORD_BYTES: Final = 256 * 1024
IDENTITY: Final = {"accept-encoding": "identity"}


async def feed_audience(ctx: AppContext, appview_url: str, request: Request) -> tuple[str, str]:
    """(aud, lxm) of the token to send with a getFeed call (wherever it is proxied): the feed
    generator's DID and getFeedSkeleton, the record read from the appview at `appview_url`. 400
    UnknownFeed when the appview has no record naming a DID."""
    feed = request.query_params.get("feed")
    try:
        uri = parse_aturi(feed or "")
    except InvalidSyntax:
        raise InvalidRequest("feed must be an at-uri of a feed generator record") from None
    if uri.collection is None or uri.rkey is None:
        raise InvalidRequest("feed must be an at-uri of a feed generator record")
    appview = XrpcClient(appview_url, ctx.http, max_response=MAX_RECORD_BYTES, timeout=TIMEOUT)
    params = {"repo": uri.authority, "collection": uri.collection, "rkey": uri.rkey}
    did = None
    try:
        answer = await appview.query_answer(GET_RECORD, params, headers=IDENTITY)
        value = json.loads(answer.body).get("value")
        did = value.get("did") if isinstance(value, dict) else None
    except XrpcClientError as exc:
        if exc.status == 0 or exc.error == "InvalidResponse":  # no answer, or an oversized one
            raise UpstreamFailure("could not fetch the feed's record from the appview") from None
    except (ValueError, AttributeError):
        pass  # not a record: no DID
    if not isinstance(did, str) or not is_valid_did(did):
        raise InvalidRequest("could not resolve feed did", "UnknownFeed")
    return did, SKELETON_METHOD

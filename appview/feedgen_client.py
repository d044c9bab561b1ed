"""Calling feed generators (bskydocs-custom-feeds.md; lexicons app/bsky/feed/getFeedSkeleton,
describeFeedGenerator): the generator's endpoint is the `#bsky_fg` service of the DID its
record names, and every call goes through the guarded client (atcore.identity.pinned: a user
aims these URLs), bounded in time and size. Failures map to the reference appview's errors: an
XRPC error the generator sends keeps its status and name (its 500 becomes a 502), a response
that breaks the lexicon is 502 InvalidFeedResponse, no answer at all is 502."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from appview.context import AppviewContext
from atcore.errors import IdentityError, InvalidSyntax
from atcore.lexicon import validate_output
from atcore.xrpc.client import XrpcAnswer, XrpcClient, XrpcClientError
from atcore.xrpc.errors import InvalidRequest, UpstreamFailure, XrpcError

SERVICE_ID: Final = "bsky_fg"
SERVICE_TYPE: Final = "BskyFeedGenerator"
SKELETON: Final = "app.bsky.feed.getFeedSkeleton"
DESCRIBE: Final = "app.bsky.feed.describeFeedGenerator"
TIMEOUT: Final = 10.0
# A describeFeedGenerator answer decides only isOnline/isValid: it gets less time.
DESCRIBE_TIMEOUT: Final = 3.0
MAX_BYTES: Final = 1024 * 1024
USER_AGENT: Final = "skyloft-appview"
PASSED_HEADERS: Final = ("authorization", "accept-language", "x-bsky-topics")


async def endpoint(ctx: AppviewContext, did: str) -> str:
    """The generator service URL in `did`'s document; 400 when there is none."""
    try:
        doc = await ctx.resolver.resolve_did(did)
    except (IdentityError, InvalidSyntax):
        raise InvalidRequest(f"could not resolve identity: {did}") from None
    url = doc.service_endpoint(SERVICE_ID, SERVICE_TYPE)
    if url is None or not (url.startswith("https://") or ctx.config.dev_mode):
        raise InvalidRequest(f"invalid feed generator service details in did document: {did}")
    return url


async def skeleton(
    ctx: AppviewContext, url: str, params: Mapping[str, Any], headers: Mapping[str, str]
) -> tuple[dict[str, Any], str | None]:
    """The generator's getFeedSkeleton answer (lexicon-checked) and its content-language."""
    sent = {k: v for k, v in headers.items() if k in PASSED_HEADERS}
    query = {k: v for k, v in params.items() if v is not None}
    try:
        answer = await _get(ctx, url, SKELETON, query, sent, TIMEOUT)
    except XrpcClientError as exc:
        raise _upstream_error(exc) from None
    try:
        value = json.loads(answer.body)
        validate_output(ctx.catalog, SKELETON, value)
    except ValueError:
        raise UpstreamFailure("feed provided an invalid response", "InvalidFeedResponse") from None
    return value, answer.headers.get("content-language")


async def describes(ctx: AppviewContext, url: str, feed: str) -> tuple[bool, bool]:
    """(isOnline, isValid): whether the generator answers describeFeedGenerator, and whether
    that answer lists `feed`."""
    try:
        answer = await _get(ctx, url, DESCRIBE, {}, {}, DESCRIBE_TIMEOUT)
        value: dict[str, Any] = json.loads(answer.body)
        validate_output(ctx.catalog, DESCRIBE, value)
    except (XrpcClientError, UpstreamFailure, ValueError):
        return False, False
    online = answer.status == 200
    return online, online and any(item["uri"] == feed for item in value["feeds"])


async def _get(
    ctx: AppviewContext,
    url: str,
    nsid: str,
    params: Mapping[str, Any],
    headers: Mapping[str, str],
    timeout: float,
) -> XrpcAnswer:
    """The generator's 2xx answer; XrpcClientError for any other."""
    client = XrpcClient(url, ctx.guarded_http, max_response=MAX_BYTES, timeout=timeout)
    sent = {**headers, "user-agent": USER_AGENT, "accept-encoding": "identity"}
    try:
        return await client.query_answer(nsid, params, headers=sent)
    except IdentityError:
        # UnsafeAddress: the endpoint is on an address the guard refuses.
        raise UpstreamFailure("feed unavailable") from None


def _upstream_error(exc: XrpcClientError) -> XrpcError:
    """The generator's failure as ours: its XRPC error keeps its status and name (its 500
    becomes a 502); no answer at all, or an unreadable one, is 502."""
    if exc.status < 400:
        return UpstreamFailure("feed unavailable")
    return XrpcError(
        502 if exc.status == 500 or exc.status >= 600 else exc.status, exc.error, exc.message
    )

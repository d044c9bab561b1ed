"""Forwarding methods the PDS does not serve to the appview or another service (spec-xrpc.md
"Service Proxying", bskydocs-service-auth.md, bskydocs-read-after-write.md).

The XrpcRouter's `fallback`: an `atproto-proxy: <did>#<service id>` header names the service,
whose endpoint comes from that DID's document; otherwise `app.bsky.*` goes to
PDS_BSKY_APP_VIEW_URL and `com.atproto.moderation.createReport` to PDS_REPORT_SERVICE_URL. The
caller's session (required: the reference proxies no anonymous call) becomes a fresh
service-auth JWT (ES256K under the account's key) with `aud` the service DID (`did#id` when the
header named one) and `lxm` the method; app.bsky.feed.getFeed's names the feed generator
instead (pds.feed_proxy). Responses stream back unchanged with their content
headers; upstream errors keep their status and XRPC error name (a 500 becomes 502
UpstreamFailure). Bodies, time and response size are bounded; a header-named service, which any
user can aim, is reached through the guarded client: outside dev mode only on a public address,
and on the very address that was checked.

Read-after-write: the appview indexes the caller's newest records a moment after they are
written, and this PDS does not patch `getPostThread`/`getAuthorFeed`/`getProfile` responses with
the caller's records newer than the appview's `atproto-repo-rev` (the reference PDS does). A
client may briefly not see its own new post in those views; the `atproto-repo-rev` header is
passed through so it can tell.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Final

import httpx
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from atcore.errors import IdentityError, InvalidSyntax, UnsafeAddress
from atcore.syntax.did import parse_did
from atcore.xrpc.body import decode_json, stream_body
from atcore.xrpc.errors import (
    InvalidRequest,
    UpstreamFailure,
    UpstreamTimeout,
    XrpcError,
)
from atcore.xrpc.router import XrpcRequest
from pds.accounts.sessions import service_jwt
from pds.auth import PRIVILEGED_METHODS, PROTECTED_METHODS, access_auth, access_or_takendown
from pds.context import AppContext, ctx_of
from pds.feed_proxy import FEED_METHOD, feed_audience
from pds.ratelimit import GLOBAL

# Request bodies forwarded (chat messages, reports): JSON, far below this.
MAX_BODY: Final = 1024 * 1024
# A proxied response may be large (a big feed, an exported chat log) but not endless.
MAX_RESPONSE: Final = 64 * 1024 * 1024
MAX_ERROR_BODY: Final = 64 * 1024
TIMEOUT: Final = httpx.Timeout(30.0, connect=10.0)
REQUEST_HEADERS: Final = (
    "accept-language",
    "atproto-accept-labelers",
    "x-bsky-topics",
    "content-type",
    "content-encoding",
)
RESPONSE_HEADERS: Final = (
    "content-type",
    "content-length",
    "content-encoding",
    "content-language",
    "atproto-repo-rev",
    "atproto-content-labelers",
    "retry-after",
)
REPORT_METHOD: Final = "com.atproto.moderation.createReport"


async def _header_target(ctx: AppContext, header: str) -> tuple[str, str, httpx.AsyncClient]:
    """(endpoint URL, aud, client) of the service an `atproto-proxy` header names."""
    did, sep, service_id = header.partition("#")
    if not did:
        raise InvalidRequest("no did specified in proxy header")
    if not sep or not service_id:
        raise InvalidRequest("no service id specified in proxy header")
    if "#" in service_id or " " in header:
        raise InvalidRequest("invalid proxy header format")
    try:
        doc = await ctx.resolver.resolve_did(parse_did(did))
    except (InvalidSyntax, IdentityError):
        raise InvalidRequest("could not resolve proxy did") from None
    url = doc.service_endpoint(f"#{service_id}")
    if url is None:
        raise InvalidRequest("could not resolve proxy did service url")
    return url, f"{did}#{service_id}", ctx.guarded_http


def _default_target(ctx: AppContext, nsid: str) -> tuple[str, str, httpx.AsyncClient] | None:
    config = ctx.config
    if nsid == REPORT_METHOD and config.report_service_url and config.report_service_did:
        return config.report_service_url, config.report_service_did, ctx.http
    if nsid.startswith("app.bsky.") and config.appview_url and config.appview_did:
        return config.appview_url, config.appview_did, ctx.http
    return None


async def _error_from(upstream: httpx.Response) -> XrpcError:
    """The upstream failure as our XRPC error, keeping its name and message when it sent one."""
    body = b""
    async for chunk in upstream.aiter_bytes():
        body += chunk
        if len(body) > MAX_ERROR_BODY:
            break
    await upstream.aclose()
    error = message = None
    try:  # the body decoder: a lone surrogate in it could not be sent on to our client
        parsed = decode_json(body)
        if isinstance(parsed, dict):
            error = parsed.get("error") if isinstance(parsed.get("error"), str) else None
            message = parsed.get("message") if isinstance(parsed.get("message"), str) else None
    except InvalidRequest:
        pass
    status = 502 if upstream.status_code == 500 else upstream.status_code
    if not 400 <= status < 600:
        status = 502
    headers = {k: upstream.headers[k] for k in ("retry-after",) if k in upstream.headers}
    return XrpcError(status, error, message, headers)


async def _relay(upstream: httpx.Response) -> AsyncIterator[bytes]:
    sent = 0
    try:
        async for chunk in upstream.aiter_raw():
            sent += len(chunk)
            if sent > MAX_RESPONSE:
                return
            yield chunk
    finally:
        await upstream.aclose()


async def forward(request: Request, nsid: str) -> Response:
    """Proxy `nsid` (not served here) for the caller; the router's fallback."""
    ctx = ctx_of(request)
    limit_headers = await ctx.rate_limits.check(XrpcRequest(request, nsid, {}), (GLOBAL,))
    if request.method not in ("GET", "HEAD", "POST"):
        raise InvalidRequest("XRPC requests only supports GET and POST")
    if nsid in PROTECTED_METHODS:
        raise InvalidRequest("Bad token method", "InvalidToken")
    # Only sessions are proxied, as by the reference (no anonymous app.bsky.* reads through a
    # PDS). A taken-down user may still appeal (the reference's one proxied method for them).
    verify = access_or_takendown if nsid == REPORT_METHOD else access_auth
    auth = await verify(request)
    if nsid in PRIVILEGED_METHODS and not auth.privileged:
        raise InvalidRequest("Bad token method", "InvalidToken")
    header = request.headers.get("atproto-proxy")
    target = await _header_target(ctx, header) if header else _default_target(ctx, nsid)
    if target is None:
        # The reference PDS answers 400 here, not 501: the method may well exist elsewhere.
        raise InvalidRequest(f"No service configured for {nsid}")
    url, aud, http = target
    headers = {k: request.headers[k] for k in REQUEST_HEADERS if k in request.headers}
    headers["accept-encoding"] = request.headers.get("accept-encoding", "identity")
    token_aud, lxm = aud, nsid
    if nsid == FEED_METHOD and ctx.config.appview_url is not None:
        token_aud, lxm = await feed_audience(ctx, ctx.config.appview_url, request)
    headers["authorization"] = f"Bearer {await service_jwt(ctx, auth.did, token_aud, lxm)}"
    content = stream_body(request, MAX_BODY) if request.method == "POST" else None
    path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    outgoing = http.build_request(
        request.method, url + path, headers=headers, content=content, timeout=TIMEOUT
    )
    try:
        upstream = await http.send(outgoing, stream=True)
    except UnsafeAddress as exc:
        raise InvalidRequest(f"proxy target refused: {exc}") from None
    except httpx.TimeoutException:
        raise UpstreamTimeout("Upstream service timed out") from None
    except httpx.HTTPError:
        raise UpstreamFailure("Upstream service unreachable") from None
    if upstream.status_code >= 400:
        raise await _error_from(upstream)
    out = {k: upstream.headers[k] for k in RESPONSE_HEADERS if k in upstream.headers}
    out.update(limit_headers)
    return StreamingResponse(_relay(upstream), status_code=upstream.status_code, headers=out)

"""com.atproto.sync host methods of a relay: requestCrawl, listHosts, getHostStatus."""

from __future__ import annotations

from typing import Any

from atcore.errors import InvalidSyntax
from atcore.syntax.integer import parse_integer
from atcore.xrpc.errors import InvalidRequest
from atcore.xrpc.router import Methods, XrpcRequest
from relay.context import RelayContext, ctx_of
from relay.db import hosts
from relay.db.hosts import HostRow

xrpc = Methods()


@xrpc.procedure("com.atproto.sync.requestCrawl")
async def request_crawl(req: XrpcRequest) -> None:
    await ctx_of(req).admission.request_crawl(req.input["hostname"])


def host_view(ctx: RelayContext, host: HostRow) -> dict[str, Any]:
    """A host as the lexicon shows it; a running consumer's status (throttled) wins."""
    status = ctx.crawler.live_status(host.hostname) or host.status
    return {
        "hostname": host.hostname,
        "seq": host.cursor,
        "accountCount": host.account_count,
        "status": status,
    }


@xrpc.query("com.atproto.sync.listHosts")
async def list_hosts(req: XrpcRequest) -> dict[str, Any]:
    ctx = ctx_of(req)
    limit = req.params.get("limit", 200)
    try:
        after = parse_integer(req.params.get("cursor", "0"), 0)
    except InvalidSyntax as exc:
        raise InvalidRequest(f"cursor {exc}") from None
    rows = await ctx.db.read(hosts.page, after, limit)
    out: dict[str, Any] = {"hosts": [host_view(ctx, host) for host in rows]}
    if len(rows) == limit:
        out["cursor"] = str(rows[-1].id)
    return out


@xrpc.query("com.atproto.sync.getHostStatus")
async def get_host_status(req: XrpcRequest) -> dict[str, Any]:
    ctx = ctx_of(req)
    hostname = req.params["hostname"].strip().lower()
    host = await ctx.db.read(hosts.get, hostname)
    if host is None:
        raise InvalidRequest(f"unknown host {hostname[:100]!r}", "HostNotFound")
    return host_view(ctx, host)

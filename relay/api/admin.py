"""The relay's admin API (off-protocol JSON under /admin/, like indigo's), behind a password.

Authentication is HTTP Basic with user `admin` (as indigo's) or a Bearer token, checked against
RELAY_ADMIN_PASSWORD; without one configured the admin API is off. Takedowns, host bans,
domain bans and host limits are persisted. A takedown stops the account's events at once and
is announced on the firehose as an `#account` event (status `takendown`); a restore announces
the account's own status again.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from atcore.frames import AccountEvent
from atcore.syntax.datetime import now_iso
from atcore.syntax.did import parse_did
from atcore.xrpc.basic_auth import basic_credentials
from atcore.xrpc.body import decode_json, read_body
from atcore.xrpc.errors import AuthRequired, InvalidRequest, NotFound, XrpcError
from atcore.xrpc.failures import error_response
from relay.api.sync_hosts import host_view
from relay.context import RelayContext, ctx_of
from relay.db import accounts, hosts
from relay.hosts import parse_hostname
from relay.limits import host_rates
from relay.writer import Change

MAX_BODY = 16 * 1024
Handler = Callable[[RelayContext, dict[str, Any]], Awaitable[Any]]


def check_admin(request: Request, password: str | None) -> None:
    if password is None:
        raise XrpcError(403, "Forbidden", "the admin API is off (no RELAY_ADMIN_PASSWORD)")
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    given = value.strip() if scheme.lower() == "bearer" else ""
    credentials = basic_credentials(request)
    if credentials is not None and credentials[0] == "admin":
        given = credentials[1]
    if not given or not hmac.compare_digest(given.encode(), password.encode()):
        raise AuthRequired("admin credentials required")


def _route(path: str, handler: Handler, method: str = "POST") -> Route:
    async def endpoint(request: Request) -> Response:
        try:
            ctx = ctx_of(request)
            check_admin(request, ctx.config.admin_password)
            body: Any = {}
            if method == "POST":
                body = decode_json(await read_body(request, MAX_BODY))
                if not isinstance(body, dict):
                    raise InvalidRequest("the body must be a JSON object")
            else:
                body = dict(request.query_params)
            result = await handler(ctx, body)
            return JSONResponse(result if result is not None else {"success": True})
        except Exception as exc:  # every failure is a JSON error body
            return error_response(exc, f"admin {path}", request.scope)

    return Route(path, endpoint, methods=[method])


def _field(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidRequest(f"{name} is required")
    return value


async def _set_takedown(ctx: RelayContext, body: dict[str, Any], takedown: bool) -> None:
    did = parse_did(_field(body, "did"))
    account = await ctx.db.read(accounts.get, did)
    if account is None:
        raise NotFound(f"unknown account {did}", "RepoNotFound")
    if account.takedown == takedown:
        return
    if takedown:
        event = AccountEvent(0, did, now_iso(), False, "takendown")
    else:
        status = account.state.status
        active = status in ("active", "desynchronized") and not account.throttled
        event = AccountEvent(0, did, now_iso(), active, None if active else status)
    await ctx.writer.commit(Change(account.host_id, event=event, did=did, takedown=takedown))


async def takedown(ctx: RelayContext, body: dict[str, Any]) -> None:
    await _set_takedown(ctx, body, True)


async def reverse_takedown(ctx: RelayContext, body: dict[str, Any]) -> None:
    await _set_takedown(ctx, body, False)


async def _host(ctx: RelayContext, body: dict[str, Any]) -> hosts.HostRow:
    hostname = parse_hostname(_field(body, "host"), ctx.config.dev_mode)
    host = await ctx.db.read(hosts.get, hostname)
    if host is None:
        raise NotFound(f"unknown host {hostname}", "HostNotFound")
    return host


async def ban_host(ctx: RelayContext, body: dict[str, Any]) -> None:
    host = await _host(ctx, body)
    await ctx.crawler.stop(host.hostname)
    await ctx.writer.run(hosts.ban_host, host.id)


async def unban_host(ctx: RelayContext, body: dict[str, Any]) -> None:
    host = await _host(ctx, body)
    await ctx.writer.run(hosts.unban_host, host.id)  # crawled again on requestCrawl


async def change_limits(ctx: RelayContext, body: dict[str, Any]) -> dict[str, Any]:
    host = await _host(ctx, body)
    values: dict[str, int | None] = {}
    for name in ("repo_limit", "per_second", "per_hour", "per_day"):
        value = body.get(name)
        if value is not None and (type(value) is not int or value < 0):
            raise InvalidRequest(f"{name} must be a non-negative integer")
        values[name] = value
    limit = values["repo_limit"] if values["repo_limit"] is not None else host.account_limit
    per_second = values["per_second"] if "per_second" in body else host.per_second
    per_hour = values["per_hour"] if "per_hour" in body else host.per_hour
    per_day = values["per_day"] if "per_day" in body else host.per_day
    await ctx.writer.run(hosts.set_limits, host.id, limit, per_second, per_hour, per_day)
    await ctx.writer.run(accounts.unthrottle_host, host.id, limit)
    ctx.writer.accounts.forget()  # the cache holds their throttled flags
    updated = await ctx.db.read(hosts.get, host.hostname)
    assert updated is not None
    consumer = ctx.crawler.consumers.get(host.hostname)
    if consumer is not None:
        consumer.host = updated
        consumer.limiter.set_rates(host_rates(limit, host.trusted, per_second, per_hour, per_day))
    return host_view(ctx, updated)


async def add_host(ctx: RelayContext, body: dict[str, Any]) -> dict[str, Any]:
    host = await ctx.admission.request_crawl(_field(body, "hostname"), admin=True)
    return host_view(ctx, host)


async def list_hosts(ctx: RelayContext, body: dict[str, Any]) -> dict[str, Any]:
    rows = await ctx.db.read(hosts.page, 0, 10_000)
    return {"hosts": [{**host_view(ctx, h), "accountLimit": h.account_limit} for h in rows]}


async def ban_domain(ctx: RelayContext, body: dict[str, Any]) -> None:
    domain = parse_hostname(_field(body, "domain"), dev_mode=False)
    for hostname in await ctx.writer.run(hosts.ban_domain, domain):
        await ctx.crawler.stop(hostname)


async def unban_domain(ctx: RelayContext, body: dict[str, Any]) -> None:
    domain = _field(body, "domain").strip().lower()
    if not await ctx.writer.run(hosts.unban_domain, domain):
        raise NotFound(f"{domain} is not banned")


async def list_domain_bans(ctx: RelayContext, body: dict[str, Any]) -> dict[str, Any]:
    return {"banned_domains": await ctx.db.read(hosts.banned_domains)}


ROUTES = [
    _route("/admin/repo/takedown", takedown),
    _route("/admin/repo/reverseTakedown", reverse_takedown),
    _route("/admin/pds/requestCrawl", add_host),
    _route("/admin/pds/list", list_hosts, "GET"),
    _route("/admin/pds/block", ban_host),
    _route("/admin/pds/unblock", unban_host),
    _route("/admin/pds/changeLimits", change_limits),
    _route("/admin/subs/banDomain", ban_domain),
    _route("/admin/subs/unbanDomain", unban_domain),
    _route("/admin/subs/listDomainBans", list_domain_bans, "GET"),
]

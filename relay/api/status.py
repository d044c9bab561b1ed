"""The relay's status page at `/`, Prometheus metrics at `/metrics`, and `/xrpc/_health`."""

from __future__ import annotations

import html
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from relay.context import RelayContext, ctx_of
from relay.crawler import ACTIVE, BANNED, IDLE, OFFLINE, THROTTLED
from relay.db import accounts, hosts
from relay.db.hosts import HostRow
from relay.ingest import REJECTED
from relay.metrics import CONTENT_TYPE, Labels

STATUSES = (ACTIVE, IDLE, OFFLINE, THROTTLED, BANNED)
MAX_PAGE_HOSTS = 500


async def _snapshot(ctx: RelayContext) -> tuple[list[HostRow], int]:
    host_rows = await ctx.db.read(hosts.page, 0, 100_000)
    return host_rows, await ctx.db.read(accounts.count)


def _status(ctx: RelayContext, host: HostRow) -> str:
    return ctx.crawler.live_status(host.hostname) or host.status


async def metrics(request: Request) -> Response:
    ctx = ctx_of(request)
    host_rows, account_count = await _snapshot(ctx)
    by_status = dict.fromkeys(STATUSES, 0)
    for host in host_rows:
        status = _status(ctx, host)
        by_status[status] = by_status.get(status, 0) + 1
    gauges: dict[str, tuple[str, dict[Labels, float]]] = {
        "relay_consumers": ("Connected firehose consumers", {(): ctx.writer.fanout.consumers}),
        "relay_hosts": (
            "Upstream hosts by status",
            {(("status", status),): count for status, count in by_status.items()},
        ),
        "relay_accounts": ("Accounts known to the relay", {(): account_count}),
        "relay_seq": ("The relay firehose's latest seq", {(): ctx.writer.head}),
        "relay_events_per_second": ("Events emitted per second, recently", {(): ctx.writer.rate()}),
    }
    return Response(ctx.metrics.render(gauges), media_type=CONTENT_TYPE)


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in row) + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


async def status_page(request: Request) -> Response:
    ctx = ctx_of(request)
    host_rows, account_count = await _snapshot(ctx)
    uptime = int(time.time() - ctx.started)
    host_table = _table(
        ["host", "status", "accounts", "cursor"],
        [
            [h.hostname, _status(ctx, h), h.account_count, h.cursor]
            for h in host_rows[:MAX_PAGE_HOSTS]
        ],
    )
    rejections = ctx.metrics.by_label(REJECTED, "reason")
    reject_table = _table(["reason", "events"], [[r, n] for r, n in sorted(rejections.items())])
    summary = _table(
        ["", ""],
        [
            ["hosts", len(host_rows)],
            ["accounts", account_count],
            ["events per second", f"{ctx.writer.rate():.1f}"],
            ["firehose seq", ctx.writer.head],
            ["consumers", ctx.writer.fanout.consumers],
            ["uptime (s)", uptime],
        ],
    )
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>Skyloft relay</title>"
        "<style>body{font-family:sans-serif;margin:2em}td,th{padding:2px 10px;"
        "text-align:left}</style></head><body><h1>Skyloft relay</h1>"
        f"<p>An AT Protocol relay. Firehose: <code>/xrpc/com.atproto.sync.subscribeRepos"
        f"</code>. Metrics: <a href='/metrics'>/metrics</a>.</p>{summary}"
        f"<h2>Hosts</h2>{host_table}<h2>Rejected events by reason</h2>{reject_table}"
        "</body></html>"
    )
    return HTMLResponse(page)


async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


ROUTES = [
    Route("/", status_page),
    Route("/metrics", metrics),
    Route("/xrpc/_health", health),
]

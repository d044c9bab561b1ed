"""app.bsky.notification: listNotifications, getUnreadCount, updateSeen (lexicons
app/bsky/notification). Notifications are derived when records are indexed
(appview.db.index); those from accounts blocking or blocked by the viewer, or no longer
active, or muted by the viewer, are not shown or counted."""

from __future__ import annotations

import json
from typing import Any

from appview import pipeline
from appview.auth import viewer_required
from appview.context import ctx_of
from appview.db import notification_prefs, reads, skeletons
from appview.records import normalize_time
from atcore.xrpc.errors import InvalidRequest
from atcore.xrpc.router import Methods, XrpcRequest

xrpc = Methods()


async def _priority(req: XrpcRequest) -> bool:
    """The `priority` parameter, else the viewer's setting (putPreferences)."""
    given = req.params.get("priority")
    if given is not None:
        return bool(given)
    priority, _ = await ctx_of(req).db.read(notification_prefs.load, req.auth)
    return priority


@xrpc.query("app.bsky.notification.listNotifications", auth=viewer_required)
async def list_notifications(req: XrpcRequest) -> dict[str, Any]:
    ctx = ctx_of(req)
    viewer: str = req.auth
    params = req.params
    limit, cursor = params.get("limit", 50), params.get("cursor")
    priority = await _priority(req)
    page = await ctx.db.read(
        skeletons.notifications, viewer, params.get("reasons"), limit, cursor, priority
    )
    seen = await ctx.db.read(skeletons.seen_at, viewer)
    state = await pipeline.load(ctx, viewer, [item[2] for item in page.items])
    views = pipeline.views(ctx)
    if seen is None and cursor is None and page.items:
        # As the reference: with no seen time yet, the newest notification is the one unread.
        seen = page.items[0][1]
    notifications = []
    for _, sort_at, author, uri, cid, reason, subject, record in page.items:
        if author not in state.actors or state.blocked(author) or state.muted(author):
            continue
        value = json.loads(record)
        view: dict[str, Any] = {
            "uri": uri,
            "cid": cid,
            "author": views.profile(state, state.actors[author]),
            "reason": reason,
            "record": value,
            "isRead": seen is None or sort_at < seen,
            "indexedAt": sort_at,
            "labels": [],
        }
        if subject is not None:
            view["reasonSubject"] = subject
        notifications.append(view)
    out: dict[str, Any] = {"notifications": notifications, "priority": priority}
    if seen is not None:
        out["seenAt"] = seen
    if page.cursor is not None:
        out["cursor"] = page.cursor
    return out


@xrpc.query("app.bsky.notification.getUnreadCount", auth=viewer_required)
async def get_unread_count(req: XrpcRequest) -> dict[str, Any]:
    ctx = ctx_of(req)
    viewer: str = req.auth
    seen = await ctx.db.read(skeletons.seen_at, viewer)
    authors = await ctx.db.read(skeletons.unread_authors, viewer, seen, await _priority(req))
    active = await ctx.db.read(reads.actors, set(authors))
    # As the reference: every unseen notification of an active account counts, blocks or not.
    count = sum(1 for a in authors if a in active and active[a].status is None)
    return {"count": count}


@xrpc.procedure("app.bsky.notification.updateSeen", auth=viewer_required)
async def update_seen(req: XrpcRequest) -> None:
    seen = normalize_time(req.input["seenAt"])
    if seen is None:
        raise InvalidRequest("seenAt must be a datetime")
    await ctx_of(req).db.write(skeletons.update_seen, req.auth, seen)

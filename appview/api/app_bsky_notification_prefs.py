"""app.bsky.notification: getPreferences, putPreferences, putPreferencesV2 (lexicons
app/bsky/notification), private per-account state the appview keeps, as the reference's does.
`priority` (putPreferences) is the default of listNotifications' and getUnreadCount's
`priority` parameter: only notifications from accounts the viewer follows."""

from __future__ import annotations

from typing import Any

from appview import notification_prefs
from appview.auth import viewer_required
from appview.context import ctx_of
from appview.db import notification_prefs as db
from atcore.xrpc.router import Methods, XrpcRequest

xrpc = Methods()


@xrpc.query("app.bsky.notification.getPreferences", auth=viewer_required)
async def get_preferences(req: XrpcRequest) -> dict[str, Any]:
    _, stored = await ctx_of(req).db.read(db.load, req.auth)
    return {"preferences": notification_prefs.complete(stored)}


@xrpc.procedure("app.bsky.notification.putPreferences", auth=viewer_required)
async def put_preferences(req: XrpcRequest) -> None:
    await ctx_of(req).db.write(db.save_priority, req.auth, req.input["priority"])


@xrpc.procedure("app.bsky.notification.putPreferencesV2", auth=viewer_required)
async def put_preferences_v2(req: XrpcRequest) -> dict[str, Any]:
    ctx = ctx_of(req)
    _, stored = await ctx.db.read(db.load, req.auth)
    preferences = notification_prefs.merge(stored, req.input or {})
    await ctx.db.write(db.save_preferences, req.auth, preferences)
    return {"preferences": preferences}

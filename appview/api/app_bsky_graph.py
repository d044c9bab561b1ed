"""app.bsky.graph.getFollowers / getFollows (lexicons app/bsky/graph): the subject's profile
and a page of the accounts on the other end, without those blocking or blocked by the viewer."""

from __future__ import annotations

from typing import Any

from appview import pipeline
from appview import records as r
from appview.auth import optional_viewer
from appview.context import ctx_of
from appview.db import skeletons
from atcore.xrpc.errors import InvalidRequest
from atcore.xrpc.router import Methods, XrpcRequest

xrpc = Methods()


async def _follow_list(req: XrpcRequest, followers: bool) -> dict[str, Any]:
    ctx = ctx_of(req)
    did = await pipeline.actor_did(ctx, req.params["actor"])
    if did is None:
        raise InvalidRequest("Profile not found")
    limit, cursor = req.params.get("limit", 50), req.params.get("cursor")
    if followers:
        page = await ctx.db.read(skeletons.edges_of, r.FOLLOW, did, limit, cursor)
        others = [other for _, other, _ in page.items]
    else:
        page = await ctx.db.read(skeletons.edges_from, r.FOLLOW, did, limit, cursor)
        others = [other for _, other in page.items]
    state = await pipeline.load(ctx, req.auth, [did, *others])
    subject = state.actors.get(did)
    if subject is None:
        raise InvalidRequest("Profile not found")
    views = pipeline.views(ctx)
    listed = [
        views.profile(state, state.actors[other])
        for other in others
        if other in state.actors and not state.blocked(other)
    ]
    out: dict[str, Any] = {"subject": views.profile(state, subject)}
    out["followers" if followers else "follows"] = listed
    if page.cursor is not None:
        out["cursor"] = page.cursor
    return out


@xrpc.query("app.bsky.graph.getFollowers", auth=optional_viewer)
async def get_followers(req: XrpcRequest) -> dict[str, Any]:
    return await _follow_list(req, followers=True)


@xrpc.query("app.bsky.graph.getFollows", auth=optional_viewer)
async def get_follows(req: XrpcRequest) -> dict[str, Any]:
    return await _follow_list(req, followers=False)

"""app.bsky.graph.getFollowers / getFollows (lexicons app/bsky/graph): the subject's profile
and a page of the accounts on the other end, without those blocking or blocked by the viewer;
getBlocks, getMutes, muteActor / unmuteActor (mutes are private, kept by the appview per
viewer) and getRelationships."""

from __future__ import annotations

from typing import Any

from appview import pipeline
from appview import records as r
from appview.auth import optional_viewer, viewer_required
from appview.context import AppviewContext, ctx_of
from appview.db import graph_reads, reads, skeletons
from atcore.syntax.datetime import now_iso
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


async def _profiles(ctx: AppviewContext, viewer: str, page: reads.Page, key: str) -> dict[str, Any]:
    dids = [item[-1] for item in page.items]
    state = await pipeline.load(ctx, viewer, dids)
    views = pipeline.views(ctx)
    out: dict[str, Any] = {
        key: [views.profile(state, state.actors[d]) for d in dids if d in state.actors]
    }
    if page.cursor is not None:
        out["cursor"] = page.cursor
    return out


@xrpc.query("app.bsky.graph.getBlocks", auth=viewer_required)
async def get_blocks(req: XrpcRequest) -> dict[str, Any]:
    ctx = ctx_of(req)
    limit, cursor = req.params.get("limit", 50), req.params.get("cursor")
    page = await ctx.db.read(skeletons.edges_from, r.BLOCK, req.auth, limit, cursor)
    return await _profiles(ctx, req.auth, page, "blocks")


@xrpc.query("app.bsky.graph.getMutes", auth=viewer_required)
async def get_mutes(req: XrpcRequest) -> dict[str, Any]:
    ctx = ctx_of(req)
    limit, cursor = req.params.get("limit", 50), req.params.get("cursor")
    page = await ctx.db.read(graph_reads.muted_actors, req.auth, limit, cursor)
    return await _profiles(ctx, req.auth, page, "mutes")


async def _mute_subject(req: XrpcRequest) -> tuple[AppviewContext, str]:
    ctx = ctx_of(req)
    did = await pipeline.actor_did(ctx, req.input["actor"])
    if did is None:
        raise InvalidRequest("Actor not found")
    if did == req.auth:
        raise InvalidRequest("Actor cannot mute themselves")
    return ctx, did


@xrpc.procedure("app.bsky.graph.muteActor", auth=viewer_required)
async def mute_actor(req: XrpcRequest) -> None:
    ctx, did = await _mute_subject(req)
    reposts = bool(req.input.get("onlyReposts", False))
    quotes = bool(req.input.get("onlyQuoteposts", False))
    await ctx.db.write(graph_reads.mute, req.auth, did, reposts, quotes, now_iso())


@xrpc.procedure("app.bsky.graph.unmuteActor", auth=viewer_required)
async def unmute_actor(req: XrpcRequest) -> None:
    ctx, did = await _mute_subject(req)
    await ctx.db.write(graph_reads.unmute, req.auth, did)


@xrpc.query("app.bsky.graph.getRelationships", auth=optional_viewer)
async def get_relationships(req: XrpcRequest) -> dict[str, Any]:
    ctx = ctx_of(req)
    others = req.params.get("others") or []
    if len(others) > 30:
        raise InvalidRequest("at most 30 others")
    actor = await pipeline.actor_did(ctx, req.params["actor"])
    not_found = [
        {"$type": "app.bsky.graph.defs#notFoundActor", "actor": other, "notFound": True}
        for other in others
    ]
    if actor is None or not others:
        # As the reference: an unknown actor relates to nobody, which is not an error.
        return {"relationships": not_found} | ({"actor": actor} if actor else {})
    dids = {other: await pipeline.actor_did(ctx, other) for other in others}
    known = await ctx.db.read(reads.actors, [d for d in dids.values() if d])
    found = await ctx.db.read(graph_reads.relationships, actor, list(known))
    relationships = [
        {"$type": "app.bsky.graph.defs#relationship", "did": did, **found[did]}
        if (did := dids[other]) in found
        else missing
        for other, missing in zip(others, not_found, strict=True)
    ]
    return {"actor": actor, "relationships": relationships}

"""app.bsky.graph lists and starter packs (lexicons app/bsky/graph): getList, getLists,
getListBlocks, getListMutes, muteActorList, unmuteActorList, getStarterPack, getStarterPacks,
getActorStarterPacks. List mutes are private, kept by the appview per viewer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Final

from appview import feed_views, graph_views, pipeline
from appview import records as r
from appview.auth import optional_viewer, viewer_required
from appview.context import AppviewContext, ctx_of
from appview.db import graph_reads, reads
from appview.views import Json
from atcore.syntax.datetime import format_datetime, now_iso
from atcore.xrpc.errors import InvalidRequest
from atcore.xrpc.router import Methods, XrpcRequest

xrpc = Methods()

# Members shown in a starter pack's sample (the reference's listItemsSample).
SAMPLE_SIZE: Final = 12
# A starter pack's joinedWeekCount counts who joined in this long before now (the reference's).
JOINED_WEEK: Final = timedelta(days=7)
MODLIST: Final = "app.bsky.graph.defs#modlist"
CURATELIST: Final = "app.bsky.graph.defs#curatelist"
# `purposes` names them short or in full, as the reference accepts.
_PURPOSES: Final = {
    "modlist": MODLIST,
    "curatelist": CURATELIST,
    MODLIST: MODLIST,
    CURATELIST: CURATELIST,
}


def _with_cursor(out: dict[str, Any], page: reads.Page) -> dict[str, Any]:
    if page.cursor is not None:
        out["cursor"] = page.cursor
    return out


@xrpc.query("app.bsky.graph.getList", auth=optional_viewer)
async def get_list(req: XrpcRequest) -> dict[str, Any]:
    ctx = ctx_of(req)
    uri = req.params["list"]
    limit, cursor = req.params.get("limit", 50), req.params.get("cursor")
    page = await ctx.db.read(graph_reads.list_items, uri, limit, cursor)
    subjects = [did for _, did in page.items]
    state = await pipeline.load(ctx, req.auth, subjects, lists=[uri])
    row = state.lists.get(uri)
    views = pipeline.views(ctx)
    view = None if row is None else graph_views.list_view(views, state, row)
    if row is None or view is None:
        raise InvalidRequest("List not found")
    items = page.items
    if req.auth != row.did and row.record.get("purpose") != MODLIST:
        # As the reference: a curation list leaves out members blocking or blocked by its creator.
        blocked = await ctx.db.read(graph_reads.blocked_either_way, row.did, subjects)
        items = [(u, did) for u, did in items if did not in blocked]
    return _with_cursor({"list": view, "items": graph_views.list_items(views, state, items)}, page)


async def _lists(ctx: AppviewContext, viewer: str | None, page: reads.Page) -> dict[str, Any]:
    uris = [item[0] for item in page.items]
    state = await pipeline.load(ctx, viewer, lists=uris)
    views = pipeline.views(ctx)
    shown = [graph_views.list_view(views, state, state.lists[u]) for u in uris if u in state.lists]
    return _with_cursor({"lists": [v for v in shown if v is not None]}, page)


@xrpc.query("app.bsky.graph.getLists", auth=optional_viewer)
async def get_lists(req: XrpcRequest) -> dict[str, Any]:
    ctx = ctx_of(req)
    did = await pipeline.actor_did(ctx, req.params["actor"])
    if did is None:
        raise InvalidRequest("Profile not found")
    purposes = req.params.get("purposes") or ["modlist", "curatelist"]
    wanted = sorted({_PURPOSES[p] for p in purposes if p in _PURPOSES})
    if not wanted:
        return {"lists": []}
    limit, cursor = req.params.get("limit", 50), req.params.get("cursor")
    page = await ctx.db.read(graph_reads.owned, r.LIST, did, limit, cursor, wanted)
    return await _lists(ctx, req.auth, page)


@xrpc.query("app.bsky.graph.getListBlocks", auth=viewer_required)
async def get_list_blocks(req: XrpcRequest) -> dict[str, Any]:
    ctx = ctx_of(req)
    limit, cursor = req.params.get("limit", 50), req.params.get("cursor")
    page = await ctx.db.read(graph_reads.blocked_lists, req.auth, limit, cursor)
    return await _lists(ctx, req.auth, page)


@xrpc.query("app.bsky.graph.getListMutes", auth=viewer_required)
async def get_list_mutes(req: XrpcRequest) -> dict[str, Any]:
    ctx = ctx_of(req)
    limit, cursor = req.params.get("limit", 50), req.params.get("cursor")
    page = await ctx.db.read(graph_reads.muted_lists, req.auth, limit, cursor)
    return await _lists(ctx, req.auth, page)


async def _existing_list(ctx: AppviewContext, uri: str) -> str:
    found = await ctx.db.read(graph_reads.named, r.LIST, [uri])
    if uri not in found:
        raise InvalidRequest("List not found")
    return uri


@xrpc.procedure("app.bsky.graph.muteActorList", auth=viewer_required)
async def mute_actor_list(req: XrpcRequest) -> None:
    ctx = ctx_of(req)
    uri = await _existing_list(ctx, req.input["list"])
    await ctx.db.write(graph_reads.mute_list, req.auth, uri, now_iso())


@xrpc.procedure("app.bsky.graph.unmuteActorList", auth=viewer_required)
async def unmute_actor_list(req: XrpcRequest) -> None:
    ctx = ctx_of(req)
    await ctx.db.write(graph_reads.unmute_list, req.auth, req.input["list"])


async def _joined(ctx: AppviewContext, uris: list[str]) -> dict[str, tuple[int, int]]:
    """Per starter pack, how many joined through it in all and in the last week."""
    week_ago = format_datetime(datetime.now(UTC) - JOINED_WEEK)
    return await ctx.db.read(graph_reads.joined_counts, uris, week_ago)


async def _starter_packs(ctx: AppviewContext, viewer: str | None, uris: list[str]) -> list[Json]:
    """starterPackViewBasic of each of `uris` that can be shown, in order."""
    rows = await ctx.db.read(graph_reads.named, r.STARTER_PACK, uris)
    lists = [u for row in rows.values() if (u := graph_views.list_uri_of(row))]
    state = await pipeline.load(ctx, viewer, [row.did for row in rows.values()], lists=lists)
    joined = await _joined(ctx, list(rows))
    views = pipeline.views(ctx)
    packs = (
        graph_views.starter_pack_basic(views, state, rows[u], joined.get(u, (0, 0)))
        for u in uris
        if u in rows
    )
    return [pack for pack in packs if pack is not None]


@xrpc.query("app.bsky.graph.getStarterPack", auth=optional_viewer)
async def get_starter_pack(req: XrpcRequest) -> dict[str, Any]:
    ctx = ctx_of(req)
    uri = req.params["starterPack"]
    rows = await ctx.db.read(graph_reads.named, r.STARTER_PACK, [uri])
    row = rows.get(uri)
    list_uri = None if row is None else graph_views.list_uri_of(row)
    sample = await ctx.db.read(graph_reads.list_sample, list_uri, SAMPLE_SIZE) if list_uri else []
    dids = [did for _, did in sample] + ([row.did] if row else [])
    state = await pipeline.load(ctx, req.auth, dids, lists=[list_uri] if list_uri else [])
    views = pipeline.views(ctx)
    view = None
    if row is not None:
        named = [f.get("uri") for f in row.record.get("feeds") or [] if isinstance(f, dict)]
        feed_uris = [u for u in named if isinstance(u, str)]
        found = await ctx.db.read(feed_views.hydrate_generators, req.auth, feed_uris)
        shown = (feed_views.generator(views, found, u) for u in dict.fromkeys(feed_uris))
        feeds = [feed for feed in shown if feed is not None]
        joined = (await _joined(ctx, [uri])).get(uri, (0, 0))
        view = graph_views.starter_pack(views, state, row, sample, joined, feeds)
    if view is None:
        raise InvalidRequest("Starter pack not found")
    return {"starterPack": view}


@xrpc.query("app.bsky.graph.getStarterPacks", auth=optional_viewer)
async def get_starter_packs(req: XrpcRequest) -> dict[str, Any]:
    ctx = ctx_of(req)
    uris = req.params["uris"]
    if len(uris) > 25:
        raise InvalidRequest("at most 25 uris")
    return {"starterPacks": await _starter_packs(ctx, req.auth, uris)}


@xrpc.query("app.bsky.graph.getActorStarterPacks", auth=optional_viewer)
async def get_actor_starter_packs(req: XrpcRequest) -> dict[str, Any]:
    ctx = ctx_of(req)
    did = await pipeline.actor_did(ctx, req.params["actor"])
    if did is None:
        raise InvalidRequest("Profile not found")
    limit, cursor = req.params.get("limit", 50), req.params.get("cursor")
    page = await ctx.db.read(graph_reads.owned, r.STARTER_PACK, did, limit, cursor)
    uris = [uri for (uri,) in page.items]
    return _with_cursor({"starterPacks": await _starter_packs(ctx, req.auth, uris)}, page)

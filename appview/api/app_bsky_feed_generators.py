"""app.bsky.feed: getFeedGenerator, getFeedGenerators, getActorFeeds, getFeed, getListFeed
(lexicons app/bsky/feed). getFeed asks the feed's generator for a skeleton
(appview.feedgen_client), passing on the viewer's token, then hydrates it like any feed:
posts that are gone or whose authors block or are blocked by the viewer are left out."""

from __future__ import annotations

from typing import Any

from appview import feed_views, feedgen_client, pipeline
from appview import records as r
from appview.auth import feed_viewer, optional_viewer
from appview.context import AppviewContext, ctx_of
from appview.db import feedgens
from appview.views import Json, Views
from atcore.xrpc.errors import InvalidRequest
from atcore.xrpc.router import Methods, XrpcRequest, XrpcResponse

xrpc = Methods()


async def _generators(ctx: AppviewContext, viewer: str | None, uris: list[str]) -> list[Json]:
    found = await ctx.db.read(feed_views.hydrate_generators, viewer, uris)
    views = pipeline.views(ctx)
    shown = (feed_views.generator(views, found, uri) for uri in dict.fromkeys(uris))
    return [view for view in shown if view is not None]


async def _feed_did(ctx: AppviewContext, uri: str) -> str:
    """The service DID the generator record at `uri` names; UnknownFeed when there is none."""
    views = await _generators(ctx, None, [uri])
    if not views:
        raise InvalidRequest("could not find feed", "UnknownFeed")
    did: str = views[0]["did"]
    return did


@xrpc.query("app.bsky.feed.getFeedGenerator", auth=optional_viewer)
async def get_feed_generator(req: XrpcRequest) -> dict[str, Any]:
    ctx = ctx_of(req)
    uri = req.params["feed"]
    views = await _generators(ctx, req.auth, [uri])
    if not views:
        raise InvalidRequest("could not find feed")
    view = views[0]
    url = await feedgen_client.endpoint(ctx, view["did"])
    online, valid = await feedgen_client.describes(ctx, url, uri)
    return {"view": view, "isOnline": online, "isValid": valid}


@xrpc.query("app.bsky.feed.getFeedGenerators", auth=optional_viewer)
async def get_feed_generators(req: XrpcRequest) -> dict[str, Any]:
    return {"feeds": await _generators(ctx_of(req), req.auth, req.params["feeds"])}


@xrpc.query("app.bsky.feed.getActorFeeds", auth=optional_viewer)
async def get_actor_feeds(req: XrpcRequest) -> dict[str, Any]:
    ctx = ctx_of(req)
    did = await pipeline.actor_did(ctx, req.params["actor"])
    if did is None:
        raise InvalidRequest("Profile not found")
    limit, cursor = req.params.get("limit", 50), req.params.get("cursor")
    page = await ctx.db.read(feedgens.actor_feeds, did, limit, cursor)
    out: dict[str, Any] = {"feeds": await _generators(ctx, req.auth, [u for (u,) in page.items])}
    if page.cursor is not None:
        out["cursor"] = page.cursor
    return out


def _feed_items(views: Views, state: Any, items: list[tuple[Any, ...]]) -> list[Json]:
    built = (views.feed_item(state, *item[:5]) for item in items)
    return [item for item in built if item is not None]


@xrpc.query("app.bsky.feed.getFeed", auth=feed_viewer)
async def get_feed(req: XrpcRequest) -> XrpcResponse:
    ctx = ctx_of(req)
    params = req.params
    feed, limit, cursor = params["feed"], params.get("limit", 50), params.get("cursor")
    url = await feedgen_client.endpoint(ctx, await _feed_did(ctx, feed))
    answer, language = await feedgen_client.skeleton(
        ctx,
        url,
        {"feed": feed, "limit": limit, "cursor": cursor},
        dict(req.request.headers),
    )
    skeleton = answer["feed"][:limit]
    items = await ctx.db.read(feed_views.skeleton_items, skeleton)
    contexts = {item["post"]: item.get("feedContext") for item in skeleton}
    state = await pipeline.load(
        ctx, req.auth, [i[2] for i in items], [i[1] for i in items], reply_context=True
    )
    out_feed = []
    for item in _feed_items(pipeline.views(ctx), state, items):
        context = contexts.get(item["post"]["uri"])
        if context is not None:
            item["feedContext"] = context
        if "reqId" in answer:
            item["reqId"] = answer["reqId"]
        out_feed.append(item)
    out: dict[str, Any] = {"feed": out_feed}
    # An empty page ends paging, and a cursor echoed back would loop (as the reference).
    next_cursor = answer.get("cursor")
    if skeleton and next_cursor is not None and next_cursor != cursor:
        out["cursor"] = next_cursor
    headers = {} if language is None else {"content-language": language}
    return XrpcResponse(out, headers=headers)


@xrpc.query("app.bsky.feed.getListFeed", auth=optional_viewer)
async def get_list_feed(req: XrpcRequest) -> dict[str, Any]:
    ctx = ctx_of(req)
    list_uri = req.params["list"]
    limit, cursor = req.params.get("limit", 50), req.params.get("cursor")
    page = await ctx.db.read(feedgens.list_feed, list_uri, limit, cursor)
    creator = r.uri_did(list_uri)
    state = await pipeline.load(
        ctx,
        req.auth,
        [creator, *(i[2] for i in page.items)],
        [i[1] for i in page.items],
        reply_context=True,
    )
    # As the reference: posts by members who block, or are blocked by, the list's creator
    # are left out too.
    blocked = await ctx.db.read(feedgens.blocks_with, creator, [i[2] for i in page.items])
    items = [i for i in page.items if i[2] not in blocked]
    out: dict[str, Any] = {"feed": _feed_items(pipeline.views(ctx), state, items)}
    if page.cursor is not None:
        out["cursor"] = page.cursor
    return out

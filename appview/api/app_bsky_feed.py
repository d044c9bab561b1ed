"""app.bsky.feed: getTimeline, getAuthorFeed, getPosts, getPostThread, getLikes,
getRepostedBy (lexicons app/bsky/feed). Each is skeleton → hydrate → present; content of
accounts blocking or blocked by the viewer is left out as the reference leaves it out."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from appview import gates, mutes, pipeline
from appview import records as r
from appview.auth import optional_viewer, viewer_required
from appview.context import AppviewContext, ctx_of
from appview.db import reads, skeletons
from appview.hydration import Hydrated, hydrate
from appview.views import Json, Views
from atcore.xrpc.errors import InvalidRequest
from atcore.xrpc.router import Methods, XrpcRequest
from runtime.sql import Connection

xrpc = Methods()

# Descendants loaded for one thread, whatever `depth` asks.
MAX_THREAD_REPLIES: Final = 1000
# Levels of replies and of parents nested in one thread response: each is a level of JSON that
# encoding and the lexicon check walk recursively, so this stays far below Python's recursion
# limit (the lexicon lets a client ask for 1000).
MAX_THREAD_LEVELS: Final = 100


def _feed(
    views: Views,
    state: Hydrated,
    page: reads.Page,
    hidden: Callable[[Hydrated, tuple[Any, ...]], bool] | None = None,
) -> dict[str, Any]:
    items = [item for item in page.items if hidden is None or not hidden(state, item)]
    feed = [views.feed_item(state, *item) for item in items]
    out: dict[str, Any] = {"feed": [item for item in feed if item is not None]}
    if page.cursor is not None:
        out["cursor"] = page.cursor
    return out


async def _feed_page(ctx: AppviewContext, viewer: str | None, page: reads.Page) -> Hydrated:
    posts = [item[1] for item in page.items]
    dids = [item[2] for item in page.items]
    return await pipeline.load(ctx, viewer, dids, posts, reply_context=True)


@xrpc.query("app.bsky.feed.getTimeline", auth=viewer_required)
async def get_timeline(req: XrpcRequest) -> dict[str, Any]:
    ctx = ctx_of(req)
    limit, cursor = req.params.get("limit", 50), req.params.get("cursor")
    page, state = await ctx.db.read(_timeline, req.auth, limit, cursor)
    return _feed(pipeline.views(ctx), state, page, mutes.hidden_in_timeline)


def _timeline(
    conn: Connection, viewer: str, limit: int, cursor: str | None
) -> tuple[reads.Page, Hydrated]:
    """The timeline's skeleton and its hydration in one read: one snapshot, and one hand-over
    to the database's reader thread instead of two (each a wait for the GIL under load)."""
    page = skeletons.timeline(conn, viewer, limit, cursor)
    posts, dids = [item[1] for item in page.items], [item[2] for item in page.items]
    return page, hydrate(conn, viewer, dids, posts, reply_context=True)


@xrpc.query("app.bsky.feed.getAuthorFeed", auth=optional_viewer)
async def get_author_feed(req: XrpcRequest) -> dict[str, Any]:
    ctx = ctx_of(req)
    params = req.params
    did = await pipeline.actor_did(ctx, params["actor"])
    filter_ = params.get("filter", "posts_with_replies")
    if filter_ not in skeletons.AUTHOR_FILTERS:
        raise InvalidRequest(f"unknown filter {filter_[:40]!r}")
    author = await pipeline.load(ctx, req.auth, [did] if did else [])
    actor = author.actors.get(did or "")
    if did is None or actor is None:
        raise InvalidRequest("Profile not found")
    relation = author.relation(did)
    if relation.blocking or relation.blocking_by_list:
        raise InvalidRequest(f"Requester has blocked actor: {did}", "BlockedActor")
    if relation.blocked_by:
        raise InvalidRequest(f"Requester is blocked by actor: {did}", "BlockedByActor")
    limit, cursor = params.get("limit", 50), params.get("cursor")
    page = await ctx.db.read(skeletons.author_feed, did, filter_, limit, cursor)
    pinned = actor.pinned_post if params.get("includePins") and cursor is None else None
    if pinned is not None:
        page = reads.Page([(pinned, pinned, did, "", ""), *page.items], page.cursor)
    state = await _feed_page(ctx, req.auth, page)
    out = _feed(pipeline.views(ctx), state, page, mutes.hidden_in_author_feed)
    if pinned is not None and out["feed"] and out["feed"][0]["post"]["uri"] == pinned:
        out["feed"][0]["reason"] = {"$type": "app.bsky.feed.defs#reasonPin"}
        later = [i for i in out["feed"][1:] if i["post"]["uri"] != pinned or "reason" in i]
        out["feed"] = [out["feed"][0], *later]
    return out


@xrpc.query("app.bsky.feed.getPosts", auth=optional_viewer)
async def get_posts(req: XrpcRequest) -> dict[str, Any]:
    ctx = ctx_of(req)
    uris = req.params["uris"]
    if len(uris) > 25:
        raise InvalidRequest("at most 25 uris")
    state = await pipeline.load(ctx, req.auth, uris=uris)
    views = pipeline.views(ctx)
    # As the reference: a post whose author and the viewer block each other is left out.
    shown = [state.posts[u] for u in uris if u in state.posts]
    return {"posts": [views.post(state, p) for p in shown if not state.blocked(p.did)]}


@xrpc.query("app.bsky.feed.getPostThread", auth=optional_viewer)
async def get_post_thread(req: XrpcRequest) -> dict[str, Any]:
    ctx = ctx_of(req)
    uri = req.params["uri"]
    depth = min(req.params.get("depth", 6), MAX_THREAD_LEVELS)
    height = min(req.params.get("parentHeight", 80), MAX_THREAD_LEVELS)
    ancestors, descendants, state, root_likes = await ctx.db.read(
        _thread, req.auth, uri, depth, height
    )
    anchor = state.posts.get(uri)
    if anchor is None:
        raise InvalidRequest(f"Post not found: {uri}", "NotFound")
    views = pipeline.views(ctx)
    if state.blocked(anchor.did):
        return {"thread": views.post_or_gap(state, uri)}
    children: dict[str, list[str]] = {}
    for child, parent in descendants:
        children.setdefault(parent, []).append(child)
    # A reply its thread's gate refused is shown alone, without parents or replies.
    if uri in state.gates.violating_replies:
        depth = height = 0
    thread = _thread_node(views, state, uri, children, depth, anchor.did, root_likes)
    parent_of = dict(ancestors)
    node, current = thread, uri
    for _ in range(height):
        above = parent_of.get(current)
        if above is None:
            break
        view = views.post_or_gap(state, above)
        if view["$type"].endswith("#postView") and state.blocks_between(
            state.posts[current].did, r.uri_did(above)
        ):
            view = views.blocked_post(state, above, r.uri_did(above))
        if view["$type"] != "app.bsky.feed.defs#postView":
            node["parent"] = view
            break
        del view["$type"]
        parent_node: Json = {
            "$type": "app.bsky.feed.defs#threadViewPost",
            "post": view,
            "threadContext": _thread_context(root_likes, above),
        }
        node["parent"] = parent_node
        node, current = parent_node, above
    out: dict[str, Any] = {"thread": thread}
    gate = gates.threadgate_view(state.gates, anchor.reply_root or uri, views.image)
    if gate is not None:
        out["threadgate"] = gate
    return out


def _thread(
    conn: Connection, viewer: str | None, uri: str, depth: int, height: int
) -> tuple[list[tuple[str, str | None]], list[tuple[str, str]], Hydrated, dict[str, str]]:
    """The thread's skeleton (ancestors, descendants), its hydration, and the likes of its
    posts by the thread root's author (every post's threadContext names that like), in one
    read: one snapshot, one hand-over to the database's reader thread instead of three."""
    ancestors, descendants = skeletons.thread(conn, uri, depth, height, MAX_THREAD_REPLIES)
    uris = {u for u, _ in ancestors} | {p for _, p in ancestors if p} | {u for u, _ in descendants}
    state = hydrate(conn, viewer, uris=uris | {uri})
    anchor = state.posts.get(uri)
    root_author = r.uri_did(uri if anchor is None else anchor.reply_root or uri)
    root_likes = reads.edges_by(conn, r.LIKE, root_author, list(state.posts))
    return ancestors, descendants, state, root_likes


def _thread_node(
    views: Views,
    state: Hydrated,
    uri: str,
    children: dict[str, list[str]],
    depth: int,
    op: str,
    root_likes: dict[str, str],
) -> Json:
    node: Json = {
        "$type": "app.bsky.feed.defs#threadViewPost",
        "post": views.post(state, state.posts[uri]),
        "threadContext": _thread_context(root_likes, uri),
    }
    if depth <= 0:
        return node
    author = state.posts[uri].did
    # As the reference: a reply across a block with the post it answers is left out.
    replies = [
        state.posts[c]
        for c in children.get(uri, ())
        if c in state.posts
        and not state.blocks_between(state.posts[c].did, author)
        and c not in state.gates.violating_replies
    ]
    # The thread author's replies first, then oldest first (the reference's default order).
    replies.sort(key=lambda p: (p.did != op, p.indexed_at))
    # As the reference: a reply across a block with the viewer stays, as a #blockedPost.
    node["replies"] = [
        views.post_or_gap(state, p.uri)
        if state.blocked(p.did)
        else _thread_node(views, state, p.uri, children, depth - 1, op, root_likes)
        for p in replies
    ]
    return node


def _thread_context(root_likes: dict[str, str], uri: str) -> Json:
    """app.bsky.feed.defs#threadContext of one post in a thread."""
    return {"rootAuthorLike": root_likes[uri]} if uri in root_likes else {}


async def _edge_list(req: XrpcRequest, kind: str) -> tuple[Hydrated, reads.Page, Views]:
    ctx = ctx_of(req)
    limit, cursor = req.params.get("limit", 50), req.params.get("cursor")
    page = await ctx.db.read(skeletons.edges_of, kind, req.params["uri"], limit, cursor)
    state = await pipeline.load(ctx, req.auth, [did for _, did, _ in page.items])
    return state, page, pipeline.views(ctx)


def _subject(req: XrpcRequest, page: reads.Page) -> dict[str, Any]:
    out: dict[str, Any] = {"uri": req.params["uri"]}
    if req.params.get("cid") is not None:
        out["cid"] = req.params["cid"]
    if page.cursor is not None:
        out["cursor"] = page.cursor
    return out


@xrpc.query("app.bsky.feed.getLikes", auth=optional_viewer)
async def get_likes(req: XrpcRequest) -> dict[str, Any]:
    state, page, views = await _edge_list(req, r.LIKE)
    likes = [
        {
            "indexedAt": created,
            "createdAt": created,
            "actor": views.profile(state, state.actors[did]),
        }
        for _, did, created in page.items
        if did in state.actors and not state.blocked(did)
    ]
    return {**_subject(req, page), "likes": likes}


@xrpc.query("app.bsky.feed.getRepostedBy", auth=optional_viewer)
async def get_reposted_by(req: XrpcRequest) -> dict[str, Any]:
    state, page, views = await _edge_list(req, r.REPOST)
    reposted = [
        views.profile(state, state.actors[did])
        for _, did, _ in page.items
        if did in state.actors and not state.blocked(did)
    ]
    return {**_subject(req, page), "repostedBy": reposted}

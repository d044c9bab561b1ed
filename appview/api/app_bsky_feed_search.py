"""app.bsky.feed: searchPosts, getQuotes, getActorLikes (lexicons app/bsky/feed). Search is
full text over post text (FTS5, appview.db.search) with the reference's `from:` operator and
the lexicon's filters; posts by accounts blocking or blocked by the viewer are left out."""

from __future__ import annotations

from typing import Any, Final

from appview import pipeline
from appview import records as r
from appview.auth import optional_viewer
from appview.context import AppviewContext, ctx_of
from appview.db import search, skeletons
from appview.hydration import Hydrated
from appview.views import Views
from atcore.xrpc.errors import InvalidRequest
from atcore.xrpc.router import Methods, XrpcRequest

xrpc = Methods()

# Operators `q` may carry, as the reference's search (`from:` names an author, `me` the viewer).
_OPERATORS = ("from:", "since:", "until:", "lang:")
# Bounds on what one query may ask of the full-text index.
MAX_QUERY: Final = 1000
MAX_TAGS: Final = 10


def _time(value: str | None, name: str) -> str | None:
    """A datetime or a plain YYYY-MM-DD date as the index's sortable timestamp."""
    if value is None:
        return None
    if len(value) == 10:
        value += "T00:00:00.000Z"
    normalized = r.normalize_time(value)
    if normalized is None:
        raise InvalidRequest(f"{name} must be a datetime or a date", "BadQueryString")
    return normalized


async def _query(
    ctx: AppviewContext, viewer: str | None, params: dict[str, Any]
) -> search.PostQuery:
    if len(params["q"]) > MAX_QUERY or len(params.get("tag") or []) > MAX_TAGS:
        raise InvalidRequest("the query is too long", "BadQueryString")
    terms, found = [], {}
    for word in params["q"].split():
        op = next(
            (o for o in _OPERATORS if word.lower().startswith(o) and len(word) > len(o)), None
        )
        if op is None:
            terms.append(word)
        else:
            found[op] = word[len(op) :]
    author = params.get("author") or found.get("from:")
    if author == "me":
        author = viewer
    author_did = None
    if author is not None:
        author_did = await pipeline.actor_did(ctx, author.removeprefix("@"))
        if author_did is None:
            raise InvalidRequest("unknown author", "BadQueryString")
    mentions = None
    if params.get("mentions") is not None:
        mentions = await pipeline.actor_did(ctx, params["mentions"].removeprefix("@"))
        if mentions is None:
            raise InvalidRequest("unknown mentioned account", "BadQueryString")
    filters = (author_did, mentions, params.get("tag"), params.get("url"), params.get("domain"))
    if not terms and not any(filters):
        raise InvalidRequest("the query has no terms", "BadQueryString")
    return search.PostQuery(
        terms=terms,
        author=author_did,
        since=_time(params.get("since") or found.get("since:"), "since"),
        until=_time(params.get("until") or found.get("until:"), "until"),
        lang=params.get("lang") or found.get("lang:"),
        url=params.get("url"),
        mentions=mentions,
        domain=params.get("domain"),
        tags=[t.removeprefix("#") for t in params.get("tag") or []],
        top=params.get("sort", "latest") == "top",
    )


def _posts(state: Hydrated, views: Views, uris: list[str]) -> list[dict[str, Any]]:
    return [
        views.post(state, state.posts[uri])
        for uri in uris
        if uri in state.posts and not state.blocked(state.posts[uri].did)
    ]


@xrpc.query("app.bsky.feed.searchPosts", auth=optional_viewer)
async def search_posts(req: XrpcRequest) -> dict[str, Any]:
    ctx = ctx_of(req)
    if req.params.get("sort", "latest") not in ("latest", "top"):
        raise InvalidRequest("sort must be latest or top", "BadQueryString")
    query = await _query(ctx, req.auth, req.params)
    limit, cursor = req.params.get("limit", 25), req.params.get("cursor")
    page = await ctx.db.read(search.posts, query, limit, cursor)
    uris = [uri for (uri,) in page.items]
    state = await pipeline.load(ctx, req.auth, uris=uris)
    out: dict[str, Any] = {"posts": _posts(state, pipeline.views(ctx), uris)}
    if page.cursor is not None:
        out["cursor"] = page.cursor
    return out


@xrpc.query("app.bsky.feed.getQuotes", auth=optional_viewer)
async def get_quotes(req: XrpcRequest) -> dict[str, Any]:
    ctx = ctx_of(req)
    limit, cursor = req.params.get("limit", 50), req.params.get("cursor")
    page = await ctx.db.read(search.quotes, req.params["uri"], limit, cursor)
    uris = [uri for (uri,) in page.items]
    state = await pipeline.load(ctx, req.auth, uris=uris)
    out: dict[str, Any] = {"uri": req.params["uri"]}
    if req.params.get("cid") is not None:
        out["cid"] = req.params["cid"]
    out["posts"] = _posts(state, pipeline.views(ctx), uris)
    if page.cursor is not None:
        out["cursor"] = page.cursor
    return out


@xrpc.query("app.bsky.feed.getActorLikes", auth=optional_viewer)
async def get_actor_likes(req: XrpcRequest) -> dict[str, Any]:
    """Only the viewer's own likes: as the reference, anyone else's (or no viewer) is
    "Profile not found"."""
    ctx = ctx_of(req)
    did = await pipeline.actor_did(ctx, req.params["actor"])
    if did is None or did != req.auth:
        raise InvalidRequest("Profile not found")
    limit, cursor = req.params.get("limit", 50), req.params.get("cursor")
    page = await ctx.db.read(skeletons.edges_from, r.LIKE, did, limit, cursor)
    posts = [subject for _, subject in page.items]
    state = await pipeline.load(ctx, req.auth, uris=posts, reply_context=True)
    views = pipeline.views(ctx)
    feed = [views.feed_item(state, p, p, r.uri_did(p), "", "") for p in posts]
    out: dict[str, Any] = {"feed": [item for item in feed if item is not None]}
    if page.cursor is not None:
        out["cursor"] = page.cursor
    return out

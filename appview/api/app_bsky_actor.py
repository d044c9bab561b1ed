"""app.bsky.actor.getProfile / getProfiles (lexicons app/bsky/actor): detailed profile views;
an account that is not active answers as the reference does (AccountTakedown,
AccountDeactivated). searchActors, searchActorsTypeahead (handle prefix and profile full text)
and getSuggestions (popular accounts the viewer does not follow, block or mute)."""

from __future__ import annotations

from typing import Any

from appview import pipeline
from appview.auth import optional_viewer
from appview.context import ctx_of
from appview.db import reads, search
from atcore.xrpc.errors import InvalidRequest
from atcore.xrpc.router import Methods, XrpcRequest

xrpc = Methods()


@xrpc.query("app.bsky.actor.getProfile", auth=optional_viewer)
async def get_profile(req: XrpcRequest) -> dict[str, Any]:
    ctx = ctx_of(req)
    did = await pipeline.actor_did(ctx, req.params["actor"])
    state = await pipeline.load(ctx, req.auth, [did] if did else [], known_followers=True)
    actor = state.actors.get(did or "")
    if actor is None:
        row = (await ctx.db.read(reads.actors, [did])).get(did or "") if did else None
        if row is not None and row.status in ("takendown", "suspended"):
            raise InvalidRequest("Account has been suspended", "AccountTakedown")
        if row is not None and row.status is not None:
            raise InvalidRequest("Account is deactivated", "AccountDeactivated")
        raise InvalidRequest("Profile not found")
    return pipeline.views(ctx).profile_detailed(state, actor)


@xrpc.query("app.bsky.actor.getProfiles", auth=optional_viewer)
async def get_profiles(req: XrpcRequest) -> dict[str, Any]:
    ctx = ctx_of(req)
    dids = [await pipeline.actor_did(ctx, actor) for actor in req.params["actors"]]
    found = [did for did in dids if did is not None]
    state = await pipeline.load(ctx, req.auth, found, known_followers=True)
    views = pipeline.views(ctx)
    profiles = [views.profile_detailed(state, state.actors[d]) for d in found if d in state.actors]
    return {"profiles": profiles}


def _terms(req: XrpcRequest) -> list[str]:
    """The words of `q` (or the deprecated `term`)."""
    text = req.params.get("q") or req.params.get("term") or ""
    return text[:256].split()


async def _actor_list(
    req: XrpcRequest,
    dids: list[str],
    cursor: str | None,
    basic: bool,
    keep: str | None = None,
    hide_muted: bool = False,
) -> dict[str, Any]:
    """Profiles of `dids` without accounts blocking or blocked by the viewer (but `keep`),
    and with `hide_muted` without those the viewer mutes."""
    ctx = ctx_of(req)
    state = await pipeline.load(ctx, req.auth, dids)
    views = pipeline.views(ctx)
    build = views.profile_basic if basic else views.profile
    actors = [
        build(state, state.actors[d])
        for d in dids
        if d in state.actors
        and (d == keep or not state.blocked(d))
        and not (hide_muted and state.muted(d))
    ]
    return {"actors": actors} | ({"cursor": cursor} if cursor else {})


@xrpc.query("app.bsky.actor.searchActors", auth=optional_viewer)
async def search_actors(req: XrpcRequest) -> dict[str, Any]:
    ctx = ctx_of(req)
    offset = search.parse_offset(req.params.get("cursor"))
    limit = req.params.get("limit", 25)
    dids, cursor = await ctx.db.read(search.actors, _terms(req), limit, offset)
    return await _actor_list(req, dids, cursor, basic=False)


@xrpc.query("app.bsky.actor.searchActorsTypeahead", auth=optional_viewer)
async def search_actors_typeahead(req: XrpcRequest) -> dict[str, Any]:
    """As the reference: an exact handle match is shown even across a block."""
    ctx = ctx_of(req)
    terms = _terms(req)
    dids, _ = await ctx.db.read(search.actors, terms, req.params.get("limit", 10), 0)
    exact = await ctx.db.read(search.exact_handle, terms) if terms else None
    return await _actor_list(req, dids, None, basic=True, keep=exact)


@xrpc.query("app.bsky.actor.getSuggestions", auth=optional_viewer)
async def get_suggestions(req: XrpcRequest) -> dict[str, Any]:
    ctx = ctx_of(req)
    offset = search.parse_offset(req.params.get("cursor"))
    limit = req.params.get("limit", 50)
    dids, cursor = await ctx.db.read(search.suggestions, req.auth, limit, offset)
    return await _actor_list(req, dids, cursor, basic=False, hide_muted=True)

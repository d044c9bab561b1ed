"""app.bsky.actor.getProfile / getProfiles (lexicons app/bsky/actor): detailed profile views;
an account that is not active answers as the reference does (AccountTakedown,
AccountDeactivated)."""

from __future__ import annotations

from typing import Any

from appview import pipeline
from appview.auth import optional_viewer
from appview.context import ctx_of
from appview.db import reads
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

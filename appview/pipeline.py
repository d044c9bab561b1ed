"""What every read endpoint shares: the actor parameter (a handle or a DID) as a DID, the
hydration call, and the view builders of this appview (STYLE.md #17)."""

from __future__ import annotations

from collections.abc import Iterable

from appview.context import AppviewContext
from appview.db import reads
from appview.hydration import Hydrated, hydrate
from appview.views import Views


async def actor_did(ctx: AppviewContext, actor: str) -> str | None:
    """The DID an `at-identifier` parameter names, if the index knows the handle."""
    if actor.startswith("did:"):
        return actor
    return await ctx.db.read(reads.did_for_handle, actor.lower())


async def load(
    ctx: AppviewContext,
    viewer: str | None,
    dids: Iterable[str] = (),
    uris: Iterable[str] = (),
    reply_context: bool = False,
) -> Hydrated:
    return await ctx.db.read(hydrate, viewer, list(dids), list(uris), reply_context)


def views(ctx: AppviewContext) -> Views:
    return Views(ctx.config.image_base)

"""What every read endpoint shares: the actor parameter (a handle or a DID) as a DID, the
hydration call, and the view builders of this appview (STYLE.md #17)."""

from __future__ import annotations

from collections.abc import Iterable

from appview.context import AppviewContext
from appview.db import reads
from appview.hydration import Hydrated, hydrate
from appview.views import Views
from atcore.errors import IdentityError, InvalidSyntax


async def actor_did(ctx: AppviewContext, actor: str) -> str | None:
    """The DID an `at-identifier` parameter names: from the index, else from the handle's
    own resolution when it is verified both ways."""
    if actor.startswith("did:"):
        return actor
    handle = actor.lower()
    known = await ctx.db.read(reads.did_for_handle, handle)
    if known is not None:
        return known
    try:
        identity = await ctx.resolver.resolve_identity(handle)
    except (IdentityError, InvalidSyntax):
        return None
    return identity.did if identity.handle is not None else None


async def load(
    ctx: AppviewContext,
    viewer: str | None,
    dids: Iterable[str] = (),
    uris: Iterable[str] = (),
    reply_context: bool = False,
    lists: Iterable[str] = (),
    known_followers: bool = False,
) -> Hydrated:
    return await ctx.db.read(
        hydrate, viewer, list(dids), list(uris), reply_context, list(lists), known_followers
    )


def views(ctx: AppviewContext) -> Views:
    return Views(ctx.config.image_base, *ctx.config.video_patterns)

"""app.bsky.actor.getPreferences / putPreferences: private preferences stored on the PDS
(lexicons app/bsky/actor; the appview never sees them).

As in the reference PDS, only `app.bsky.*` preferences are accepted, and the personal details
preference (birth date) is hidden from and closed to every session but a full-access one (the
account password's): app passwords, privileged or not, neither see nor set nor erase it.
"""

from __future__ import annotations

from typing import Any, Final

from atcore.datamodel import to_json
from atcore.xrpc.errors import InvalidRequest
from atcore.xrpc.router import Methods, XrpcRequest
from pds.auth import ACCESS_SCOPE, AuthContext, access_auth, access_or_takendown
from pds.context import ctx_of

xrpc = Methods()

NAMESPACE: Final = "app.bsky"
PERSONAL_DETAILS: Final = "app.bsky.actor.defs#personalDetailsPref"
# The JSON body limit bounds their size; this bounds their number.
MAX_PREFERENCES: Final = 1000


def _visible(auth: AuthContext, pref: dict[str, Any]) -> bool:
    return auth.scope == ACCESS_SCOPE or pref.get("$type") != PERSONAL_DETAILS


@xrpc.query("app.bsky.actor.getPreferences", auth=access_or_takendown)
async def get_preferences(req: XrpcRequest) -> dict[str, Any]:
    prefs = await ctx_of(req).accounts.preferences.get(req.auth.did, NAMESPACE)
    return {"preferences": [p for p in prefs if _visible(req.auth, p)]}


@xrpc.procedure("app.bsky.actor.putPreferences", auth=access_auth)
async def put_preferences(req: XrpcRequest) -> None:
    ctx = ctx_of(req)
    auth: AuthContext = req.auth
    # Stored as JSON: $link/$bytes forms stay as the client sent them.
    prefs: list[dict[str, Any]] = to_json(req.input["preferences"])
    if len(prefs) > MAX_PREFERENCES:
        raise InvalidRequest(f"at most {MAX_PREFERENCES} preferences")
    for pref in prefs:
        kind = pref.get("$type")
        if not isinstance(kind, str) or not kind:
            raise InvalidRequest("Preference is missing a $type")
        if not kind.startswith(NAMESPACE + "."):
            raise InvalidRequest(f"Some preferences are not in the {NAMESPACE} namespace")
    forbidden = [str(pref["$type"]) for pref in prefs if not _visible(auth, pref)]
    if forbidden:
        raise InvalidRequest(
            f"Do not have authorization to set preferences: {', '.join(forbidden)}"
        )
    if auth.scope != ACCESS_SCOPE:
        # An app password cannot see the personal details, so it must not erase them.
        kept = await ctx.accounts.preferences.get(auth.did, NAMESPACE)
        prefs = prefs + [p for p in kept if not _visible(auth, p)]
    await ctx.accounts.preferences.put(auth.did, NAMESPACE, prefs)

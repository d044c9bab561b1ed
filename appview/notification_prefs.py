"""Notification preferences (lexicon app/bsky/notification/defs#preferences, getPreferences,
putPreferences, putPreferencesV2): what an account stored, completed with the reference's
defaults — every kind listed and pushed, filterable kinds from everyone — and, as the
reference, the deprecated `chat` entry always at its default."""

from __future__ import annotations

from typing import Any, Final

Json = dict[str, Any]

FILTERABLE: Final = (
    "follow",
    "like",
    "likeViaRepost",
    "mention",
    "quote",
    "reply",
    "repost",
    "repostViaRepost",
)
PLAIN: Final = ("starterpackJoined", "subscribedPost", "unverified", "verified")
CHAT_DEFAULT: Final = {"include": "all", "push": True}


def complete(stored: Json) -> Json:
    """A full #preferences object from the entries an account set."""
    out: Json = {"chat": dict(CHAT_DEFAULT)}
    for name in FILTERABLE:
        entry = stored.get(name) or {}
        include = entry.get("include")
        out[name] = {
            "include": include if include in ("all", "follows") else "all",
            "list": entry.get("list", True),
            "push": entry.get("push", True),
        }
    for name in PLAIN:
        entry = stored.get(name) or {}
        out[name] = {"list": entry.get("list", True), "push": entry.get("push", True)}
    return out


def merge(current: Json, update: Json) -> Json:
    """putPreferencesV2: the entries given replace the current ones."""
    changed = {k: v for k, v in update.items() if k in FILTERABLE or k in PLAIN}
    return complete({**current, **changed})

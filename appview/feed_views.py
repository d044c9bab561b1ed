"""Feed generators as views (app.bsky.feed.defs#generatorView), hydrated with their creators
and the viewer's likes in one read (STYLE.md #17), and the feed items of a generator's
skeleton (app.bsky.feed.defs#skeletonFeedPost) turned into the rows feed views are built from."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from appview import records as r
from appview.db import feedgens, reads
from appview.db.feedgens import GeneratorRow
from appview.hydration import Hydrated, hydrate
from appview.views import Json, Views
from runtime.sql import Connection

REASON_REPOST: Final = "app.bsky.feed.defs#skeletonReasonRepost"


@dataclass
class Generators:
    state: Hydrated
    rows: dict[str, GeneratorRow] = field(default_factory=dict)
    likes: dict[str, str] = field(default_factory=dict)


def hydrate_generators(conn: Connection, viewer: str | None, uris: Iterable[str]) -> Generators:
    rows = feedgens.generators(conn, set(uris))
    state = hydrate(conn, viewer, {row.creator for row in rows.values()})
    out = Generators(state, rows)
    if viewer is not None:
        out.likes = reads.edges_by(conn, r.LIKE, viewer, rows.keys())
    return out


def generator(views: Views, found: Generators, uri: str) -> Json | None:
    """The generatorView of `uri`, None when it or its creator cannot be shown."""
    row = found.rows.get(uri)
    state = found.state
    if row is None or row.creator not in state.actors:
        return None
    value = row.record
    view: Json = {
        "uri": row.uri,
        "cid": row.cid,
        "did": value["did"],
        "creator": views.profile(state, state.actors[row.creator]),
        "displayName": value["displayName"],
    }
    for key in ("description", "descriptionFacets", "acceptsInteractions", "contentMode"):
        if key in value:
            view[key] = value[key]
    avatar = r.blob_cid(value.get("avatar"))
    if avatar is not None:
        view["avatar"] = views.image("avatar", row.creator, avatar)
    view["likeCount"] = row.likes
    view["labels"] = []
    if state.viewer is not None:
        view["viewer"] = {"like": found.likes[uri]} if uri in found.likes else {}
    view["indexedAt"] = row.indexed_at
    return view


def skeleton_items(
    conn: Connection, feed: list[dict[str, Any]]
) -> list[tuple[str, str, str, str, str]]:
    """Items of a getFeedSkeleton answer as (item uri, post uri, author or reposter, when, the
    repost's cid): a repost the index does not know, or that reposts another post, is
    dropped."""
    named = [item["reason"]["repost"] for item in feed if _is_repost(item)]
    known = feedgens.reposts(conn, named)
    items = []
    for item in feed:
        post = item["post"]
        if not _is_repost(item):
            items.append((post, post, r.uri_did(post), "", ""))
            continue
        repost = known.get(item["reason"]["repost"])
        if repost is not None and repost[0] == post:
            items.append((item["reason"]["repost"], post, repost[1], repost[2], repost[3]))
    return items


def _is_repost(item: dict[str, Any]) -> bool:
    reason = item.get("reason")
    return isinstance(reason, dict) and reason.get("$type") == REASON_REPOST

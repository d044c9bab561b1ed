"""Presentation of lists and starter packs (lexicon app/bsky/graph/defs): listView,
listItemView, starterPackView and starterPackViewBasic, pure functions over hydrated state."""

from __future__ import annotations

from appview import records as r
from appview.db.graph_reads import NamedRow
from appview.hydration import Hydrated
from appview.views import Json, Views


def list_view(views: Views, state: Hydrated, row: NamedRow) -> Json | None:
    creator = state.actors.get(row.did)
    if creator is None:
        return None
    basic = views.list_basic(state, row)
    view: Json = {
        "uri": row.uri,
        "cid": row.cid,
        "creator": views.profile(state, creator),
        "name": basic["name"],
        "purpose": basic["purpose"],
    }
    for key in ("description", "descriptionFacets"):
        if key in row.record:
            view[key] = row.record[key]
    for key in ("avatar", "listItemCount", "labels", "viewer", "indexedAt"):
        if key in basic:
            view[key] = basic[key]
    return view


def list_items(views: Views, state: Hydrated, items: list[tuple[str, str]]) -> list[Json]:
    """listItemView for each (item uri, subject) whose subject can be shown."""
    return [
        {"uri": uri, "subject": views.profile(state, state.actors[did])}
        for uri, did in items
        if did in state.actors
    ]


def starter_pack_basic(
    views: Views, state: Hydrated, row: NamedRow, joined: tuple[int, int]
) -> Json | None:
    """starterPackViewBasic; `joined` is (joinedAllTimeCount, joinedWeekCount)."""
    creator = state.actors.get(row.did)
    if creator is None:
        return None
    view: Json = {
        "uri": row.uri,
        "cid": row.cid,
        "record": row.record,
        "creator": views.profile_basic(state, creator),
    }
    listed = state.lists.get(str(row.record.get("list", "")))
    if listed is not None:
        view["listItemCount"] = listed.items
    view["joinedAllTimeCount"], view["joinedWeekCount"] = joined
    view["labels"] = []
    view["indexedAt"] = row.indexed_at
    return view


def starter_pack(
    views: Views,
    state: Hydrated,
    row: NamedRow,
    sample: list[tuple[str, str]],
    joined: tuple[int, int],
    feeds: list[Json],
) -> Json | None:
    """starterPackView with its list, a sample of the list's members and the views of the
    feeds it names that can be shown."""
    basic = starter_pack_basic(views, state, row, joined)
    if basic is None:
        return None
    view: Json = {k: basic[k] for k in ("uri", "cid", "record", "creator")}
    listed = state.lists.get(str(row.record.get("list", "")))
    if listed is not None:
        view["list"] = views.list_basic(state, listed)
        view["listItemsSample"] = list_items(views, state, sample)
    view["feeds"] = feeds
    view["joinedAllTimeCount"], view["joinedWeekCount"] = joined
    view["labels"] = []
    view["indexedAt"] = row.indexed_at
    return view


def list_uri_of(row: NamedRow) -> str | None:
    value = row.record.get("list")
    return value if isinstance(value, str) and f"/{r.LIST}/" in value else None

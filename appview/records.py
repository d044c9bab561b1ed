"""What the indexer reads out of app.bsky records (lexicons app/bsky/feed/post, graph/*,
actor/profile): pure functions over a record's JSON form, no database.

Times are normalised to one sortable shape, `YYYY-MM-DDTHH:MM:SS.mmmZ` in UTC; `sort_at` is the
earlier of a record's createdAt and the time it was indexed (a record cannot sort into the
future by claiming a late createdAt), as the reference appview orders feeds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from atcore.syntax.datetime import format_datetime

POST: Final = "app.bsky.feed.post"
LIKE: Final = "app.bsky.feed.like"
REPOST: Final = "app.bsky.feed.repost"
FOLLOW: Final = "app.bsky.graph.follow"
BLOCK: Final = "app.bsky.graph.block"
LIST: Final = "app.bsky.graph.list"
LIST_ITEM: Final = "app.bsky.graph.listitem"
LIST_BLOCK: Final = "app.bsky.graph.listblock"
STARTER_PACK: Final = "app.bsky.graph.starterpack"
GENERATOR: Final = "app.bsky.feed.generator"
THREADGATE: Final = "app.bsky.feed.threadgate"
POSTGATE: Final = "app.bsky.feed.postgate"
PROFILE: Final = "app.bsky.actor.profile"

# Records that point at one subject (a post's strongRef, or a DID, or a list's URI).
EDGE_SUBJECT: Final = {
    LIKE: "strong",
    REPOST: "strong",
    FOLLOW: "did",
    BLOCK: "did",
    LIST_ITEM: "did",
    LIST_BLOCK: "uri",
}
# Records looked up by owner, with the field naming what they govern or serve.
NAMED_TARGET: Final = {
    LIST: "purpose",
    STARTER_PACK: "list",
    GENERATOR: "did",
    THREADGATE: "post",
    POSTGATE: "post",
}
# Kept in the record table only; read with the actor (its activity-subscription choice).
NOTIFICATION_DECLARATION: Final = "app.bsky.notification.declaration"
INDEXED: Final = frozenset({POST, PROFILE, NOTIFICATION_DECLARATION, *EDGE_SUBJECT, *NAMED_TARGET})

IMAGES: Final = "app.bsky.embed.images"
VIDEO: Final = "app.bsky.embed.video"
EXTERNAL: Final = "app.bsky.embed.external"
RECORD: Final = "app.bsky.embed.record"
RECORD_WITH_MEDIA: Final = "app.bsky.embed.recordWithMedia"
MENTION: Final = "app.bsky.richtext.facet#mention"
LINK: Final = "app.bsky.richtext.facet#link"
TAG: Final = "app.bsky.richtext.facet#tag"
MEDIA, VIDEO_MEDIA = 1, 2


def normalize_time(text: object) -> str | None:
    """`text` as a sortable UTC timestamp with milliseconds, None if it is not a datetime."""
    if not isinstance(text, str):
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    return format_datetime(parsed)


def sort_at(created_at: str | None, indexed_at: str) -> str:
    return indexed_at if created_at is None else min(created_at, indexed_at)


def ref_uri(value: object) -> str | None:
    """The `uri` of a com.atproto.repo.strongRef."""
    if isinstance(value, dict) and isinstance(value.get("uri"), str):
        return str(value["uri"])
    return None


def ref_cid(value: object) -> str | None:
    if isinstance(value, dict) and isinstance(value.get("cid"), str):
        return str(value["cid"])
    return None


def blob_cid(value: object) -> str | None:
    """The CID string of a blob ref (`{"$type": "blob", "ref": {"$link": ...}}`)."""
    if isinstance(value, dict):
        ref = value.get("ref")
        if isinstance(ref, dict) and isinstance(ref.get("$link"), str):
            return str(ref["$link"])
    return None


def uri_did(uri: str) -> str:
    """The authority (DID) of an at:// URI whose syntax the lexicon already checked."""
    return uri[len("at://") :].split("/", 1)[0]


@dataclass(frozen=True, slots=True)
class PostFacts:
    """What a post contributes to the index beyond its record."""

    reply_root: str | None
    reply_parent: str | None
    quote: str | None
    media: int
    langs: str | None
    mentions: tuple[str, ...]
    links: tuple[str, ...]
    tags: tuple[str, ...]


def quoted_post(record: dict[str, Any]) -> str | None:
    """The URI of the post a post record quotes (PostFacts.quote), read on its own because
    hydration asks it of every post it loads."""
    embed = record.get("embed") or {}
    kind = embed.get("$type")
    if kind == RECORD:
        quote = ref_uri(embed.get("record"))
    elif kind == RECORD_WITH_MEDIA:
        quote = ref_uri((embed.get("record") or {}).get("record"))
    else:
        return None
    if quote is not None and "/app.bsky.feed.post/" not in quote:
        return None  # a record embed of a list, feed or starter pack is not a quote
    return quote


def post_facts(record: dict[str, Any]) -> PostFacts:
    reply = record.get("reply") or {}
    embed = record.get("embed") or {}
    kind = embed.get("$type")
    media_embed = (embed.get("media") or {}) if kind == RECORD_WITH_MEDIA else embed
    media_kind = media_embed.get("$type")
    media = VIDEO_MEDIA if media_kind == VIDEO else MEDIA if media_kind == IMAGES else 0
    mentions, links, tags = [], [], list(record.get("tags") or [])
    for facet in record.get("facets") or []:
        for feature in facet.get("features") or []:
            ftype = feature.get("$type")
            if ftype == MENTION:
                mentions.append(feature["did"])
            elif ftype == LINK:
                links.append(feature["uri"])
            elif ftype == TAG:
                tags.append(feature["tag"])
    if kind == EXTERNAL:
        links.append((embed.get("external") or {}).get("uri", ""))
    langs = record.get("langs")
    return PostFacts(
        reply_root=ref_uri(reply.get("root")),
        reply_parent=ref_uri(reply.get("parent")),
        quote=quoted_post(record),
        media=media,
        langs=",".join(langs) if langs else None,
        mentions=tuple(dict.fromkeys(mentions)),
        links=tuple(dict.fromkeys(link for link in links if link)),
        tags=tuple(dict.fromkeys(tag for tag in tags if tag)),
    )


def edge_subject(collection: str, record: dict[str, Any]) -> tuple[str, str | None]:
    """(subject, subject CID) of a like, repost, follow, block, list item or list block."""
    subject = record["subject"]
    if EDGE_SUBJECT[collection] == "strong":
        return subject["uri"], subject["cid"]
    return subject, None


def named_target(collection: str, record: dict[str, Any]) -> str | None:
    value = record.get(NAMED_TARGET[collection])
    return value if isinstance(value, str) else None

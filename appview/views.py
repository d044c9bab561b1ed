"""Presentation (STYLE.md #17): pure functions from hydrated state to the lexicon views of
app.bsky.actor.defs, app.bsky.feed.defs and app.bsky.embed.* — one builder per view type, no
database. Image URLs take the reference's shape, `{base}/{preset}/plain/{did}/{cid}@jpeg`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from appview import gates
from appview import records as r
from appview.db.graph_reads import NamedRow
from appview.db.reads import ActorRow, PostRow
from appview.hydration import Hydrated
from appview.images.presets import image_url

Json = dict[str, Any]


@dataclass(frozen=True)
class Views:
    """View builders bound to where image URLs point (BSKY_CDN_URL or the appview's own image
    service) and where video URLs point (AppviewConfig.video_patterns)."""

    image_base: str
    video_playlist: str
    video_thumbnail: str

    def image(self, preset: str, did: str, cid: str) -> str:
        return image_url(self.image_base, preset, did, cid)

    # --- app.bsky.actor.defs ---

    def viewer_state(self, state: Hydrated, did: str) -> Json | None:
        if state.viewer is None or did == state.viewer:
            return None if state.viewer is None else {"muted": False, "blockedBy": False}
        rel = state.relation(did)
        view: Json = {"muted": rel.mutes, "blockedBy": rel.blocked_by}
        # As the reference: scoped mutes show only when the account is not muted outright.
        if rel.muted_reposts and not rel.mutes:
            view["mutedOnlyReposts"] = True
        if rel.muted_quotes and not rel.mutes:
            view["mutedOnlyQuoteposts"] = True
        for key, uri in (
            ("mutedByList", rel.muted_by_list),
            ("blockingByList", rel.blocking_by_list),
        ):
            if uri is not None and uri in state.lists:
                view[key] = self.list_basic(state, state.lists[uri])
        # As the reference: a block through a list names the list as `blocking`, and the
        # viewer's follows are hidden across a block.
        if rel.blocking or rel.blocking_by_list:
            view["blocking"] = rel.blocking or rel.blocking_by_list
        if rel.following and not rel.blocked:
            view["following"] = rel.following
        if rel.followed_by and not rel.blocked:
            view["followedBy"] = rel.followed_by
        return view

    @staticmethod
    def activity_subscription(actor: ActorRow) -> Json:
        """#profileAssociatedActivitySubscription: the declaration's choice, one of the known
        values, else (and with no declaration, as the lexicon says) "followers"."""
        allow = actor.allow_subscriptions
        return {"allowSubscriptions": allow if allow in ("mutuals", "none") else "followers"}

    def profile_basic(self, state: Hydrated, actor: ActorRow) -> Json:
        view: Json = {"did": actor.did, "handle": actor.handle or "handle.invalid"}
        if actor.display_name is not None:
            view["displayName"] = actor.display_name
        if actor.avatar is not None:
            view["avatar"] = self.image("avatar", actor.did, actor.avatar)
        view["associated"] = {"activitySubscription": self.activity_subscription(actor)}
        viewer = self.viewer_state(state, actor.did)
        if viewer is not None:
            view["viewer"] = viewer
        view["labels"] = []
        if actor.created_at is not None:
            view["createdAt"] = actor.created_at
        return view

    def profile(self, state: Hydrated, actor: ActorRow) -> Json:
        view = self.profile_basic(state, actor)
        if actor.description is not None:
            view["description"] = actor.description
        view["indexedAt"] = actor.indexed_at
        return view

    def profile_detailed(self, state: Hydrated, actor: ActorRow) -> Json:
        view = self.profile(state, actor)
        if actor.banner is not None:
            view["banner"] = self.image("banner", actor.did, actor.banner)
        view["followersCount"] = actor.followers
        view["followsCount"] = actor.follows
        view["postsCount"] = actor.posts
        view["associated"] = {
            "lists": actor.lists,
            "feedgens": actor.feeds,
            "starterPacks": actor.starter_packs,
            "labeler": False,
            "activitySubscription": self.activity_subscription(actor),
        }
        if actor.pinned_post is not None and actor.pinned_cid is not None:
            view["pinnedPost"] = {"uri": actor.pinned_post, "cid": actor.pinned_cid}
        if "viewer" in view and actor.did in state.known_followers:
            count, first = state.known_followers[actor.did]
            followers = [
                self.profile_basic(state, state.actors[f])
                for f in first
                if f in state.actors and not state.blocked(f)
            ]
            view["viewer"]["knownFollowers"] = {"count": count, "followers": followers}
        return view

    # --- app.bsky.graph.defs ---

    def list_basic(self, state: Hydrated, row: NamedRow) -> Json:
        view: Json = {
            "uri": row.uri,
            "cid": row.cid,
            "name": row.record.get("name", ""),
            "purpose": row.record.get("purpose", ""),
        }
        avatar = r.blob_cid(row.record.get("avatar"))
        if avatar is not None:
            view["avatar"] = self.image("avatar", row.did, avatar)
        view["listItemCount"] = row.items
        view["labels"] = []
        if state.viewer is not None:
            viewer: Json = {"muted": row.uri in state.list_muted}
            if row.uri in state.list_blocked:
                viewer["blocked"] = state.list_blocked[row.uri]
            view["viewer"] = viewer
        view["indexedAt"] = row.indexed_at
        return view

    # --- app.bsky.feed.defs ---

    def post(self, state: Hydrated, post: PostRow, depth: int = 0) -> Json:
        author = state.actors[post.did]
        view: Json = {
            "uri": post.uri,
            "cid": post.cid,
            "author": self.profile_basic(state, author),
            "record": post.record,
        }
        embed = gates.detach(
            state.gates, self.embed(state, post.did, post.record.get("embed"), depth), post.uri
        )
        if embed is not None:
            view["embed"] = embed
        view |= {
            "replyCount": post.replies,
            "repostCount": post.reposts,
            "likeCount": post.likes,
            "quoteCount": post.quotes,
            "indexedAt": post.indexed_at,
            "labels": [],
        }
        if state.viewer is not None:
            embedding = gates.embedding_disabled(state.gates, state.viewer, post.uri)
            viewer: Json = {"threadMuted": False, "embeddingDisabled": embedding}
            reply_disabled = gates.reply_disabled(state.gates, state.viewer, post)
            if reply_disabled is not None:
                viewer["replyDisabled"] = reply_disabled
            if post.uri in state.likes:
                viewer["like"] = state.likes[post.uri]
            if post.uri in state.reposts:
                viewer["repost"] = state.reposts[post.uri]
            if state.viewer == post.did and author.pinned_post is not None:
                viewer["pinned"] = author.pinned_post == post.uri
            view["viewer"] = viewer
        # Only a thread's root carries its gate, as in the reference.
        threadgate = (
            None if post.reply_root else gates.threadgate_view(state.gates, post.uri, self.image)
        )
        if threadgate is not None:
            view["threadgate"] = threadgate
        return view

    def post_or_gap(self, state: Hydrated, uri: str) -> Json:
        """A postView, or #notFoundPost / #blockedPost where there is none to show."""
        post = state.posts.get(uri)
        if post is None:
            return {"$type": "app.bsky.feed.defs#notFoundPost", "uri": uri, "notFound": True}
        if state.blocked(post.did):
            return self.blocked_post(state, uri, post.did)
        return {"$type": "app.bsky.feed.defs#postView", **self.post(state, post)}

    def blocked_post(self, state: Hydrated, uri: str, did: str) -> Json:
        return {
            "$type": "app.bsky.feed.defs#blockedPost",
            "uri": uri,
            "blocked": True,
            "author": self.blocked_author(state, did),
        }

    def blocked_author(self, state: Hydrated, did: str) -> Json:
        """app.bsky.feed.defs#blockedAuthor: as the reference, its viewer state names the
        blocks only."""
        author: Json = {"did": did}
        viewer = self.viewer_state(state, did)
        if viewer is not None:
            author["viewer"] = {k: v for k, v in viewer.items() if k.startswith("block")}
        return author

    def feed_item(
        self,
        state: Hydrated,
        item_uri: str,
        post_uri: str,
        by: str,
        at: str,
        item_cid: str | None,
    ) -> Json | None:
        """app.bsky.feed.defs#feedViewPost for a post or a repost (`item_uri` != `post_uri`,
        made at `at`, its record `item_cid`); None when the post or the reposter cannot be
        shown."""
        post = state.posts.get(post_uri)
        if post is None or state.blocked(post.did) or self._ancestor_blocked(state, post):
            return None
        item: Json = {"post": self.post(state, post)}
        # As the reference: a reply its thread's gate refused shows without its context.
        refused = post.uri in state.gates.violating_replies
        reply = None if refused else self.reply_ref(state, post)
        if reply is not None:
            item["reply"] = reply
        if item_uri != post_uri:
            reposter = state.actors.get(by)
            if reposter is None or state.blocked(by):
                return None
            item["reason"] = {
                "$type": "app.bsky.feed.defs#reasonRepost",
                "by": self.profile_basic(state, reposter),
                "uri": item_uri,
                "cid": item_cid,
                "indexedAt": at,
            }
        return item

    @staticmethod
    def _ancestor_blocked(state: Hydrated, post: PostRow) -> bool:
        """As the reference's feeds: a reply whose parent or grandparent author is blocked
        either way is left out."""
        parent_uri = post.reply_parent
        if parent_uri is None:
            return False
        parent = state.posts.get(parent_uri)
        grandparent = None if parent is None else parent.reply_parent
        return any(state.blocked(r.uri_did(uri)) for uri in (parent_uri, grandparent) if uri)

    def reply_ref(self, state: Hydrated, post: PostRow) -> Json | None:
        if post.reply_parent is None or post.reply_root is None:
            return None
        ref: Json = {
            "root": self.post_or_gap(state, post.reply_root),
            "parent": self.post_or_gap(state, post.reply_parent),
        }
        # As the reference: blocks between the reply's, its parent's and its root's authors
        # turn the parent or root into a #blockedPost for every viewer.
        parent_did, root_did = r.uri_did(post.reply_parent), r.uri_did(post.reply_root)
        if ref["parent"]["$type"].endswith("#postView") and state.blocks_between(
            post.did, parent_did
        ):
            ref["parent"] = self.blocked_post(state, post.reply_parent, parent_did)
        if ref["root"]["$type"].endswith("#postView") and (
            state.blocks_between(post.did, root_did) or state.blocks_between(parent_did, root_did)
        ):
            ref["root"] = self.blocked_post(state, post.reply_root, root_did)
        parent = state.posts.get(post.reply_parent)
        if parent is not None and parent.reply_parent is not None:
            grandparent = state.actors.get(r.uri_did(parent.reply_parent))
            if grandparent is not None:
                ref["grandparentAuthor"] = self.profile_basic(state, grandparent)
        return ref

    # --- app.bsky.embed.* ---

    def embed(self, state: Hydrated, did: str, embed: Any, depth: int) -> Json | None:
        if not isinstance(embed, dict):
            return None
        kind = embed.get("$type")
        if kind == r.IMAGES:
            return self._images(did, embed)
        if kind == r.VIDEO:
            return self._video(did, embed)
        if kind == r.EXTERNAL:
            return self._external(did, embed)
        if kind == r.RECORD:
            record = self._record(state, did, embed, depth)
            return {"$type": f"{r.RECORD}#view", "record": record}
        if kind == r.RECORD_WITH_MEDIA:
            media = self.embed(state, did, embed.get("media"), depth)
            record = {"record": self._record(state, did, embed.get("record") or {}, depth)}
            return {"$type": f"{r.RECORD_WITH_MEDIA}#view", "record": record, "media": media}
        return None

    def _images(self, did: str, embed: Json) -> Json:
        images = []
        for image in embed.get("images") or []:
            cid = r.blob_cid(image.get("image")) or ""
            view: Json = {
                "thumb": self.image("feed_thumbnail", did, cid),
                "fullsize": self.image("feed_fullsize", did, cid),
                "alt": image.get("alt", ""),
            }
            if "aspectRatio" in image:
                view["aspectRatio"] = image["aspectRatio"]
            images.append(view)
        return {"$type": f"{r.IMAGES}#view", "images": images}

    def _video(self, did: str, embed: Json) -> Json:
        cid = r.blob_cid(embed.get("video")) or ""
        view: Json = {
            "$type": f"{r.VIDEO}#view",
            "cid": cid,
            "playlist": _video_url(self.video_playlist, did, cid),
            "thumbnail": _video_url(self.video_thumbnail, did, cid),
        }
        for key in ("alt", "aspectRatio"):
            if key in embed:
                view[key] = embed[key]
        return view

    def _external(self, did: str, embed: Json) -> Json:
        external = embed.get("external") or {}
        view: Json = {
            "uri": external.get("uri", ""),
            "title": external.get("title", ""),
            "description": external.get("description", ""),
        }
        thumb = r.blob_cid(external.get("thumb"))
        if thumb is not None:
            view["thumb"] = self.image("feed_thumbnail", did, thumb)
        return {"$type": f"{r.EXTERNAL}#view", "external": view}

    def _record(self, state: Hydrated, quoter: str, embed: Json, depth: int) -> Json:
        uri = r.ref_uri(embed.get("record")) or ""
        post = state.posts.get(uri)
        if post is None or depth >= 2:
            return {"$type": f"{r.RECORD}#viewNotFound", "uri": uri, "notFound": True}
        # Blocked either way by the viewer, or between the quoting and the quoted author.
        if state.blocked(post.did) or state.blocks_between(quoter, post.did):
            return {
                "$type": f"{r.RECORD}#viewBlocked",
                "uri": uri,
                "blocked": True,
                "author": self.blocked_author(state, post.did),
            }
        view: Json = {
            "$type": f"{r.RECORD}#viewRecord",
            "uri": post.uri,
            "cid": post.cid,
            "author": self.profile_basic(state, state.actors[post.did]),
            "value": post.record,
            "labels": [],
            "replyCount": post.replies,
            "repostCount": post.reposts,
            "likeCount": post.likes,
            "quoteCount": post.quotes,
            "indexedAt": post.indexed_at,
        }
        inner = gates.detach(
            state.gates, self.embed(state, post.did, post.record.get("embed"), depth + 1), post.uri
        )
        view["embeds"] = [] if inner is None else [inner]
        return view


def _video_url(pattern: str, did: str, cid: str) -> str:
    """`pattern` with its `%s`s the DID and the CID, each escaped as a URI component (as the
    reference fills its patterns)."""
    for value in (did, cid):
        pattern = pattern.replace("%s", quote(value, safe="-_.!~*'()"), 1)
    return pattern

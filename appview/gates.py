"""Threadgates and postgates (lexicons app/bsky/feed/threadgate, postgate): who may reply to a
thread and who may quote a post, as the reference appview reads them.

A gate lives at the governed post's rkey in its author's repo (`.../app.bsky.feed.threadgate/
<rkey>` for the post `.../app.bsky.feed.post/<rkey>`) and must name that post. A threadgate's
`allow` rules (mention, follower, following, list) decide `viewer.replyDisabled`; `allow`
absent lets everyone reply, empty lets nobody but the author. A postgate's `disableRule`
decides `viewer.embeddingDisabled`, and a quote listed in its `detachedEmbeddingUris` shows as
`app.bsky.embed.record#viewDetached`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from appview import records as r
from appview.db import gates as db
from appview.db import reads
from appview.db.reads import PostRow
from runtime.sql import Connection

Json = dict[str, Any]
MENTION_RULE: Final = "app.bsky.feed.threadgate#mentionRule"
FOLLOWER_RULE: Final = "app.bsky.feed.threadgate#followerRule"
FOLLOWING_RULE: Final = "app.bsky.feed.threadgate#followingRule"
LIST_RULE: Final = "app.bsky.feed.threadgate#listRule"
DISABLE_RULE: Final = "app.bsky.feed.postgate#disableRule"
RECORD_VIEW: Final = "app.bsky.embed.record#view"
RECORD_WITH_MEDIA_VIEW: Final = "app.bsky.embed.recordWithMedia#view"


@dataclass(frozen=True, slots=True)
class Record:
    uri: str
    cid: str
    value: Json
    indexed_at: str


@dataclass
class Gates:
    """The gates of one response's posts, and what the viewer's standing under them needs."""

    threadgates: dict[str, Record] = field(default_factory=dict)  # by root post uri
    postgates: dict[str, Record] = field(default_factory=dict)  # by post uri
    root_mentions: dict[str, frozenset[str]] = field(default_factory=dict)
    owners_followed: set[str] = field(default_factory=set)  # root authors the viewer follows
    owners_following: set[str] = field(default_factory=set)  # root authors who follow the viewer
    viewer_lists: set[str] = field(default_factory=set)  # allow-lists the viewer is on
    lists: dict[str, Record] = field(default_factory=dict)
    list_sizes: dict[str, int] = field(default_factory=dict)
    violating_replies: set[str] = field(default_factory=set)
    violating_quotes: set[str] = field(default_factory=set)


def gate_uri(post_uri: str, collection: str) -> str:
    did, _, rkey = post_uri.removeprefix("at://").partition("/")
    return f"at://{did}/{collection}/{rkey.rpartition('/')[2]}"


def _gates(conn: Connection, collection: str, posts: set[str]) -> dict[str, Record]:
    uris = {gate_uri(post, collection): post for post in posts}
    found = db.records(conn, collection, uris)
    return {
        uris[uri]: Record(uri, *row)
        for uri, row in found.items()
        if row[1].get("post") == uris[uri]  # a gate must govern the post at its rkey
    }


def load(conn: Connection, viewer: str | None, posts: Mapping[str, PostRow]) -> Gates:
    out = Gates()
    out.threadgates = _gates(conn, r.THREADGATE, {p.reply_root or p.uri for p in posts.values()})
    out.postgates = _gates(conn, r.POSTGATE, set(posts))
    lists = {uri for gate in out.threadgates.values() for uri in _lists(gate)}
    out.lists = {u: Record(u, *row) for u, row in db.records(conn, r.LIST, lists).items()}
    out.list_sizes = db.list_sizes(conn, out.lists)
    for uri, (thread, embedding) in db.violations(conn, posts).items():
        if thread:
            out.violating_replies.add(uri)
        if embedding:
            out.violating_quotes.add(uri)
    if viewer is None:
        return out
    owners = {r.uri_did(root) for root in out.threadgates} - {viewer}
    out.owners_followed = set(reads.edges_by(conn, r.FOLLOW, viewer, owners))
    out.owners_following = set(reads.edges_to(conn, r.FOLLOW, viewer, owners))
    out.viewer_lists = db.lists_with(conn, viewer, lists)
    roots = {root: posts.get(root) for root in out.threadgates}
    roots |= reads.posts(conn, {root for root, row in roots.items() if row is None})
    out.root_mentions = {
        root: frozenset(r.post_facts(row.record).mentions)
        for root, row in roots.items()
        if row is not None
    }
    return out


def _lists(gate: Record) -> list[str]:
    """The lists a threadgate's list rules name."""
    return [
        rule["list"] for rule in gate.value.get("allow") or () if rule.get("$type") == LIST_RULE
    ]


def may_reply(
    gate: Record, mentioned: bool, follows_owner: bool, followed_by_owner: bool, lists: set[str]
) -> bool:
    """Whether a threadgate's `allow` rules let someone other than the thread's author reply,
    given what is true of them (`lists`: the rule lists they are on)."""
    allow = gate.value.get("allow")
    if allow is None:
        return True
    kinds = {rule.get("$type") for rule in allow}
    return (
        (MENTION_RULE in kinds and mentioned)
        or (FOLLOWER_RULE in kinds and follows_owner)
        or (FOLLOWING_RULE in kinds and followed_by_owner)
        or any(uri in lists for uri in _lists(gate))
    )


def reply_disabled(gates: Gates, viewer: str | None, post: PostRow) -> bool | None:
    """Whether the viewer may not reply in `post`'s thread; None without a gate or viewer."""
    if post.uri in gates.violating_replies:
        return True
    root = post.reply_root or post.uri
    gate = gates.threadgates.get(root)
    if gate is None or viewer is None:
        return None
    owner = r.uri_did(root)
    if viewer == owner:
        return False
    return not may_reply(
        gate,
        viewer in gates.root_mentions.get(root, ()),
        owner in gates.owners_followed,
        owner in gates.owners_following,
        gates.viewer_lists,
    )


def hidden_reply(conn: Connection, root: str, reply: str) -> bool:
    """Whether the thread's author hid `reply` (the threadgate's hiddenReplies)."""
    gate = _gates(conn, r.THREADGATE, {root}).get(root)
    return gate is not None and reply in (gate.value.get("hiddenReplies") or ())


def violations(conn: Connection, did: str, facts: r.PostFacts) -> tuple[bool, bool]:
    """(a reply its thread's gate does not allow, a quote its post's postgate does not allow)
    for a post by `did` being indexed: the reference's violatesThreadGate and
    violatesEmbeddingRules, fixed when the post is indexed."""
    thread = False
    root = facts.reply_root
    if root is not None and r.uri_did(root) != did:
        gate = _gates(conn, r.THREADGATE, {root}).get(root)
        if gate is not None:
            owner = r.uri_did(root)
            root_post = reads.posts(conn, [root]).get(root)
            mentions = () if root_post is None else r.post_facts(root_post.record).mentions
            thread = not may_reply(
                gate,
                did in mentions,
                bool(reads.edges_by(conn, r.FOLLOW, did, [owner])),
                bool(reads.edges_to(conn, r.FOLLOW, did, [owner])),
                db.lists_with(conn, did, _lists(gate)),
            )
    embedding = False
    if facts.quote is not None and r.uri_did(facts.quote) != did:
        postgate = _gates(conn, r.POSTGATE, {facts.quote}).get(facts.quote)
        embedding = postgate is not None and _disables(postgate)
    return thread, embedding


def embedding_disabled(gates: Gates, viewer: str | None, post_uri: str) -> bool:
    gate = gates.postgates.get(post_uri)
    return gate is not None and viewer != r.uri_did(post_uri) and _disables(gate)


def _disables(postgate: Record) -> bool:
    rules = postgate.value.get("embeddingRules") or ()
    return any(rule.get("$type") == DISABLE_RULE for rule in rules)


def detach(gates: Gates, embed: Json | None, post_uri: str) -> Json | None:
    """`embed` (the view of `post_uri`'s embed) with a quote its author detached replaced by
    #viewDetached."""
    if embed is None:
        return None
    holder = embed
    if embed.get("$type") == RECORD_WITH_MEDIA_VIEW:
        holder = embed["record"]
    elif embed.get("$type") != RECORD_VIEW:
        return embed
    quoted = holder["record"].get("uri", "")
    gate = gates.postgates.get(quoted)
    detached = gate is not None and post_uri in (gate.value.get("detachedEmbeddingUris") or ())
    if detached or post_uri in gates.violating_quotes:
        holder["record"] = {
            "$type": "app.bsky.embed.record#viewDetached",
            "uri": quoted,
            "detached": True,
        }
    return embed


def threadgate_view(gates: Gates, root_uri: str, image: Callable[..., str]) -> Json | None:
    """app.bsky.feed.defs#threadgateView of the thread rooted at `root_uri`."""
    gate = gates.threadgates.get(root_uri)
    if gate is None:
        return None
    named = [
        rule.get("list") for rule in gate.value.get("allow") or () if rule.get("$type") == LIST_RULE
    ]
    lists = [_list_basic(gates, gates.lists[u], image) for u in named if u in gates.lists]
    return {"uri": gate.uri, "cid": gate.cid, "record": gate.value, "lists": lists}


def _list_basic(gates: Gates, row: Record, image: Callable[..., str]) -> Json:
    view: Json = {
        "uri": row.uri,
        "cid": row.cid,
        "name": row.value.get("name", ""),
        "purpose": row.value.get("purpose", ""),
        "listItemCount": gates.list_sizes.get(row.uri, 0),
        "labels": [],
        "indexedAt": row.indexed_at,
    }
    avatar = r.blob_cid(row.value.get("avatar"))
    if avatar is not None:
        view["avatar"] = image("avatar", r.uri_did(row.uri), avatar)
    return view

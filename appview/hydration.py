"""Hydration (STYLE.md #17): everything the views of one response need, loaded in one read
transaction with one batched query per kind of fact — posts (and the posts they quote, two
levels deep), their authors, and the viewer's relations to all of them. Accounts that are not
active are left out, so their content disappears from every view."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from appview import gates
from appview import records as r
from appview.db import graph_reads, reads
from appview.db.graph_reads import NamedRow
from appview.db.reads import ActorRow, PostRow
from runtime.sql import Connection

QUOTE_LEVELS = 2
# As the reference: a profile shows at most this many of the viewer's known followers.
KNOWN_FOLLOWERS = 5


@dataclass(frozen=True, slots=True)
class Relation:
    """The viewer's relation to one actor (app.bsky.actor.defs#viewerState)."""

    following: str | None = None
    followed_by: str | None = None
    blocking: str | None = None
    blocked_by: bool = False
    blocking_by_list: str | None = None
    muted: bool = False
    muted_by_list: str | None = None
    muted_reposts: bool = False
    muted_quotes: bool = False

    @property
    def blocked(self) -> bool:
        """A block in either direction: the reference hides content both ways."""
        return bool(self.blocking or self.blocked_by or self.blocking_by_list)

    @property
    def mutes(self) -> bool:
        """Muted outright or through a muted list (the reference's viewerMuteExists)."""
        return self.muted or self.muted_by_list is not None


@dataclass
class Hydrated:
    viewer: str | None
    actors: dict[str, ActorRow] = field(default_factory=dict)
    posts: dict[str, PostRow] = field(default_factory=dict)
    relations: dict[str, Relation] = field(default_factory=dict)
    likes: dict[str, str] = field(default_factory=dict)
    reposts: dict[str, str] = field(default_factory=dict)
    lists: dict[str, NamedRow] = field(default_factory=dict)
    # The viewer's mutes of lists, and its list blocks by list
    list_muted: set[str] = field(default_factory=set)
    list_blocked: dict[str, str] = field(default_factory=dict)
    gates: gates.Gates = field(default_factory=gates.Gates)

    # subject → (how many the viewer follows follow it, the first KNOWN_FOLLOWERS of them)
    known_followers: dict[str, tuple[int, list[str]]] = field(default_factory=dict)

    # (blocker, blocked) between the loaded actors: blocks between third parties
    blocks: set[tuple[str, str]] = field(default_factory=set)

    def blocks_between(self, a: str, b: str) -> bool:
        return (a, b) in self.blocks or (b, a) in self.blocks

    def relation(self, did: str) -> Relation:
        return self.relations.get(did, _NONE)

    def blocked(self, did: str) -> bool:
        return self.relation(did).blocked

    def muted(self, did: str) -> bool:
        return self.relation(did).mutes


_NONE = Relation()


def hydrate(
    conn: Connection,
    viewer: str | None,
    dids: Iterable[str] = (),
    uris: Iterable[str] = (),
    reply_context: bool = False,
    lists: Iterable[str] = (),
    known_followers: bool = False,
) -> Hydrated:
    """Load `uris` (posts), the posts they quote (and with `reply_context` the roots and
    parents they reply to), every author and `dids` (with `known_followers`, the viewer's
    follows that follow each of `dids` too), `lists` and the lists viewer states name, and
    the viewer's relations to all of those actors and lists."""
    state = Hydrated(viewer)
    dids = list(dids)
    if known_followers and viewer is not None:
        known = reads.known_followers(conn, viewer, dids)
        state.known_followers = {s: (len(f), f[:KNOWN_FOLLOWERS]) for s, f in known.items()}
        dids += [f for _, first in state.known_followers.values() for f in first]
    wanted = set(uris)
    for level in range(QUOTE_LEVELS + 2):
        found = reads.posts(conn, wanted - state.posts.keys())
        state.posts.update(found)
        wanted = {q for post in found.values() if (q := _quoted(post)) is not None}
        if reply_context and level == 0:
            wanted |= {ref for p in found.values() for ref in (p.reply_root, p.reply_parent) if ref}
        if not wanted:
            break
    requested = graph_reads.named(conn, r.LIST, set(lists))
    actor_dids = set(dids) | {post.did for post in state.posts.values()}
    actor_dids |= {row.did for row in requested.values()}
    state.actors = {
        did: row for did, row in reads.actors(conn, actor_dids).items() if row.status is None
    }
    state.posts = {uri: p for uri, p in state.posts.items() if p.did in state.actors}
    state.gates = gates.load(conn, viewer, state.posts)
    if state.posts:
        state.blocks = reads.blocks_among(conn, {p.did for p in state.posts.values()})
    if viewer is not None:
        others = state.actors.keys() - {viewer}
        _relations(conn, state, viewer, others)
        state.likes = reads.edges_by(conn, r.LIKE, viewer, state.posts.keys())
        state.reposts = reads.edges_by(conn, r.REPOST, viewer, state.posts.keys())
    _lists(conn, state, viewer, requested)
    return state


def _lists(
    conn: Connection, state: Hydrated, viewer: str | None, requested: dict[str, NamedRow]
) -> None:
    """The requested lists of active creators, and the lists viewer states name (shown as
    listViewBasic, without their creator)."""
    state.lists = {uri: row for uri, row in requested.items() if row.did in state.actors}
    named = {
        u for rel in state.relations.values() for u in (rel.muted_by_list, rel.blocking_by_list)
    }
    state.lists |= graph_reads.named(conn, r.LIST, {u for u in named if u} - requested.keys())
    if viewer is not None:
        state.list_muted = graph_reads.list_mutes(conn, viewer, state.lists.keys())
        state.list_blocked = reads.edges_by(conn, r.LIST_BLOCK, viewer, state.lists.keys())


def _quoted(post: PostRow) -> str | None:
    return r.quoted_post(post.record)


def _relations(conn: Connection, state: Hydrated, viewer: str, dids: set[str]) -> None:
    has = reads.standing(conn, viewer)
    following = reads.edges_by(conn, r.FOLLOW, viewer, dids)
    followed_by = reads.edges_to(conn, r.FOLLOW, viewer, dids)
    blocking = reads.edges_by(conn, r.BLOCK, viewer, dids) if has.blocks else {}
    blocked_by = set(reads.edges_to(conn, r.BLOCK, viewer, dids)) if has.blocked else set()
    blocked_by |= reads.list_blocked_by(conn, viewer, dids)
    by_list = reads.list_blocks(conn, viewer, dids) if has.list_blocks else {}
    mutes = graph_reads.mutes(conn, viewer, dids) if has.mutes else {}
    muted_by_list = graph_reads.muted_by_list(conn, viewer, dids) if has.list_mutes else {}
    for did in dids:
        mute = mutes.get(did)
        relation = Relation(
            following.get(did),
            followed_by.get(did),
            blocking.get(did),
            did in blocked_by,
            by_list.get(did),
            muted=mute is not None and mute.full,
            muted_by_list=muted_by_list.get(did),
            muted_reposts=mute is not None and mute.only_reposts,
            muted_quotes=mute is not None and mute.only_quoteposts,
        )
        if relation != _NONE:
            state.relations[did] = relation

"""Hydration (STYLE.md #17): everything the views of one response need, loaded in one read
transaction with one batched query per kind of fact — posts (and the posts they quote, two
levels deep), their authors, and the viewer's relations to all of them. Accounts that are not
active are left out, so their content disappears from every view."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field

from appview import gates
from appview import records as r
from appview.db import reads
from appview.db.reads import ActorRow, PostRow

QUOTE_LEVELS = 2


@dataclass(frozen=True, slots=True)
class Relation:
    """The viewer's relation to one actor (app.bsky.actor.defs#viewerState)."""

    following: str | None = None
    followed_by: str | None = None
    blocking: str | None = None
    blocked_by: bool = False
    blocking_by_list: str | None = None

    @property
    def blocked(self) -> bool:
        """A block in either direction: the reference hides content both ways."""
        return bool(self.blocking or self.blocked_by or self.blocking_by_list)


@dataclass
class Hydrated:
    viewer: str | None
    actors: dict[str, ActorRow] = field(default_factory=dict)
    posts: dict[str, PostRow] = field(default_factory=dict)
    relations: dict[str, Relation] = field(default_factory=dict)
    likes: dict[str, str] = field(default_factory=dict)
    reposts: dict[str, str] = field(default_factory=dict)
    gates: gates.Gates = field(default_factory=gates.Gates)

    def relation(self, did: str) -> Relation:
        return self.relations.get(did, _NONE)

    def blocked(self, did: str) -> bool:
        return self.relation(did).blocked


_NONE = Relation()


def hydrate(
    conn: sqlite3.Connection,
    viewer: str | None,
    dids: Iterable[str] = (),
    uris: Iterable[str] = (),
    reply_context: bool = False,
) -> Hydrated:
    """Load `uris` (posts), the posts they quote (and with `reply_context` the roots and
    parents they reply to), every author and `dids`, and the viewer's relations to all of
    those actors."""
    state = Hydrated(viewer)
    wanted = set(uris)
    for level in range(QUOTE_LEVELS + 2):
        found = reads.posts(conn, wanted - state.posts.keys())
        state.posts.update(found)
        wanted = {q for post in found.values() if (q := _quoted(post)) is not None}
        if reply_context and level == 0:
            wanted |= {ref for p in found.values() for ref in (p.reply_root, p.reply_parent) if ref}
        if not wanted:
            break
    actor_dids = set(dids) | {post.did for post in state.posts.values()}
    state.actors = {
        did: row for did, row in reads.actors(conn, actor_dids).items() if row.status is None
    }
    state.posts = {uri: p for uri, p in state.posts.items() if p.did in state.actors}
    state.gates = gates.load(conn, viewer, state.posts)
    if viewer is not None:
        others = state.actors.keys() - {viewer}
        _relations(conn, state, viewer, others)
        state.likes = reads.edges_by(conn, r.LIKE, viewer, state.posts.keys())
        state.reposts = reads.edges_by(conn, r.REPOST, viewer, state.posts.keys())
    return state


def _quoted(post: PostRow) -> str | None:
    return r.post_facts(post.record).quote


def _relations(conn: sqlite3.Connection, state: Hydrated, viewer: str, dids: set[str]) -> None:
    following = reads.edges_by(conn, r.FOLLOW, viewer, dids)
    followed_by = reads.edges_to(conn, r.FOLLOW, viewer, dids)
    blocking = reads.edges_by(conn, r.BLOCK, viewer, dids)
    blocked_by = set(reads.edges_to(conn, r.BLOCK, viewer, dids))
    blocked_by |= reads.list_blocked_by(conn, viewer, dids)
    by_list = reads.list_blocks(conn, viewer, dids)
    for did in dids:
        relation = Relation(
            following.get(did),
            followed_by.get(did),
            blocking.get(did),
            did in blocked_by,
            by_list.get(did),
        )
        if relation != _NONE:
            state.relations[did] = relation

"""Where the viewer's mutes hide content, as the reference's feedItemBlocksAndMutes rules do:
a timeline leaves out posts and reposts by muted accounts (and what a scoped mute names); an
author feed leaves out reposts of muted accounts' posts unless the author is muted too."""

from __future__ import annotations

from typing import Any

from appview import records as r
from appview.hydration import Hydrated


def _is_quote(state: Hydrated, post_uri: str) -> bool:
    post = state.posts.get(post_uri)
    return post is not None and r.quoted_post(post.record) is not None


def hidden_in_timeline(state: Hydrated, item: tuple[Any, ...]) -> bool:
    """`item` is (item uri, post uri, author or reposter, when)."""
    item_uri, post_uri, by = item[0], item[1], item[2]
    author = r.uri_did(post_uri)
    if state.muted(author) or state.muted(by):
        return True
    if item_uri != post_uri and state.relation(by).muted_reposts:
        return True
    return state.relation(author).muted_quotes and _is_quote(state, post_uri)


def hidden_in_author_feed(state: Hydrated, item: tuple[Any, ...]) -> bool:
    return state.muted(r.uri_did(item[1])) and not state.muted(item[2])

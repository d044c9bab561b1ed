"""A personalised feed: the posts that the accounts the viewer follows have liked, most recently
liked first. A request without a viewer (no service-auth token) gets the posts most recently
liked by anyone this feed has seen.

Run it with `skyloft feedgen serve feedgen.examples.follows_liked`.
"""

from __future__ import annotations

from feedgen.sdk import Feed, Page, Ranked, Reader

FOLLOW = "app.bsky.graph.follow"
LIKE = "app.bsky.feed.like"

feed = Feed(
    "follows-liked",
    display_name="Liked by my follows",
    description="Posts the people you follow have liked",
)
feed.keep(FOLLOW, LIKE)


@feed.for_viewer
def liked_by_follows(viewer: str | None, reader: Reader, page: Page) -> list[Ranked]:
    follows = reader.subjects(FOLLOW, viewer) if viewer is not None else None
    return reader.ranked_subjects(LIKE, follows, page)

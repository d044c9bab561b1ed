"""The builder's API of the feed-generator SDK (bskydocs-starter-custom-feeds.md).

A feed is one module that defines `feed = Feed(...)` and decorates one function deciding which
records belong in it and how they rank; everything else (the subscription, the cursor, storage,
deletes, `getFeedSkeleton`, `describeFeedGenerator`, the did:web document, service auth) is the
SDK's. `skyloft feedgen serve my_feed` runs it:

    from feedgen.sdk import Feed, Record

    feed = Feed("python", display_name="Python", description="Posts that mention #python")

    @feed.select  # called for every new or updated app.bsky.feed.post
    def python_posts(record: Record) -> float | None:
        text = record.value.get("text", "")
        return record.time_us if "#python" in text.lower() else None  # rank, or not in the feed

A larger rank comes first. A record the function returns None for is not in the feed (an update
that stops matching removes it); deleted records and deleted accounts leave the feed by
themselves, and the records of accounts taken down, suspended or deactivated are left out of
every page until the account is active again. Requests get these records by rank. A
personalised feed instead keeps the records it needs and builds each page itself, for the
viewer whose service-auth token the request carries (None without one, the starter kit's
public skeleton):

    feed.keep("app.bsky.graph.follow", "app.bsky.feed.like")

    @feed.for_viewer
    def liked_by_follows(viewer: str | None, reader: Reader, page: Page) -> list[Ranked]:
        follows = reader.subjects("app.bsky.graph.follow", viewer) if viewer else None
        return reader.ranked_subjects("app.bsky.feed.like", follows, page)

`Feed(..., collection="app.bsky.feed.repost")` selects records of another collection. Both
functions are plain (not async), called once per record and once per request in the server's
event loop (for_viewer on a reader thread with PostgreSQL): keep them to in-memory work and
`reader` calls.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from atcore.syntax.recordkey import parse_record_key

POST = "app.bsky.feed.post"


@dataclass(frozen=True, slots=True)
class Record:
    """A record created or updated in some repository, as the subscription delivered it.

    `value` is the record's data (from the firehose: the DAG-CBOR data model, links as CIDs;
    from a Jetstream: its JSON, links as `{"$link": ...}`); `time_us` is when this feed
    generator received it, in microseconds since the epoch (the starter kit's `indexedAt`).
    """

    did: str
    collection: str
    rkey: str
    cid: str
    value: dict[str, Any]
    time_us: int

    @property
    def uri(self) -> str:
        return f"at://{self.did}/{self.collection}/{self.rkey}"


class Ranked(NamedTuple):
    """One skeleton entry: a larger rank comes first; ties go by the URI, descending."""

    rank: float
    uri: str


@dataclass(frozen=True)
class Page:
    """Which page is asked for: at most `limit` entries ranked strictly below `before`."""

    limit: int
    before: Ranked | None = None


class Reader(Protocol):
    """What a personalised feed function may read of the records the feed kept."""

    def subjects(self, collection: str, author: str) -> list[str]:
        """The subjects (a DID, or a URI for likes and reposts) of `author`'s kept records in
        `collection`: `subjects("app.bsky.graph.follow", viewer)` is whom the viewer follows."""
        ...

    def ranked_subjects(
        self, collection: str, authors: Sequence[str] | None, page: Page
    ) -> list[Ranked]:
        """Subjects of the kept records in `collection` by any of `authors` (None: by anyone),
        each once, ranked by the newest such record: the posts these accounts liked, most
        recently liked first."""
        ...

    def ranked(self, page: Page) -> list[Ranked]:
        """The public skeleton: the selected records by rank."""
        ...


Select = Callable[[Record], "float | None"]
ForViewer = Callable[["str | None", Reader, Page], list[Ranked]]


@dataclass
class Feed:
    """One feed: its record key (the `app.bsky.feed.generator` record's), what `publish` puts in
    that record, and the builder's functions."""

    name: str
    display_name: str = ""
    description: str = ""
    collection: str = POST
    selector: Select | None = None
    personaliser: ForViewer | None = None
    kept: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        parse_record_key(self.name)
        if not self.display_name:
            self.display_name = self.name

    def select(self, fn: Select) -> Select:
        """Decorate the function that ranks a record of `collection` (None: not in the feed)."""
        self.selector = fn
        return fn

    def for_viewer(self, fn: ForViewer) -> ForViewer:
        """Decorate the function that builds each page, for the viewer or None."""
        self.personaliser = fn
        return fn

    def keep(self, *collections: str) -> None:
        """Store every record of these collections for the personalised function to read."""
        self.kept = self.kept | frozenset(collections)

    @property
    def collections(self) -> frozenset[str]:
        """Every collection the feed stores records of."""
        return self.kept | ({self.collection} if self.selector is not None else set())

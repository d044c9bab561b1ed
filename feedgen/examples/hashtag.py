"""A keyword feed: posts whose text has any of KEYWORDS (words or #hashtags), newest first.

Run it with `skyloft feedgen serve feedgen.examples.hashtag`; `skyloft feedgen new NAME` copies
this module as a start for your own feed.
"""

from __future__ import annotations

import re

from feedgen.sdk import Feed, Record

KEYWORDS = frozenset({"#skyloft", "#atproto", "skyloft"})
WORDS = re.compile(r"#?\w+")

feed = Feed(
    "hashtag",
    display_name="Skyloft posts",
    description="Posts that mention skyloft, #skyloft or #atproto",
)


@feed.select
def keyword_posts(record: Record) -> float | None:
    """A post's rank is when it arrived (newest first); None leaves it out of the feed."""
    text = record.value.get("text")
    if not isinstance(text, str):
        return None
    words = set(WORDS.findall(text.lower()))
    return record.time_us if words & KEYWORDS else None

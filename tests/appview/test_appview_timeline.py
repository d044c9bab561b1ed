"""getTimeline over items spread across months: the skeleton looks for a page in growing
windows of time (appview.db.skeletons.timeline), so pages must come out as one newest-first
order of the viewer's and its follows' posts and reposts, whatever window each item falls in,
with nothing skipped or repeated at window edges and through cursors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from atcore.identity.plc_client import PlcClient
from atcore.syntax.datetime import format_datetime
from tests.appview.conftest import appview_config, serve_appview
from tests.appview.test_appview_index import accounts, record, ref
from tests.relay.fake_pds import FakePds, post

RKEYS = "abcdefghijklmnopqrstuvwxyz"
Net = tuple[FakePds, str, PlcClient]
# Ages of the posts, in minutes: inside, at and beyond each window's edge (1, 4, 16, 64 and
# 256 hours), and far beyond the last.
AGES = (
    1,
    59,
    60,
    61,
    4 * 60 - 1,
    4 * 60 + 1,
    16 * 60 + 1,
    64 * 60 - 1,
    64 * 60,
    256 * 60 + 5,
    31 * 1440,
    400 * 1440,
)


async def test_timeline_pages_follow_one_order_across_time_windows(
    tmp_path: Path, plc_url: str, network: Net
) -> None:
    upstream, url, _ = network
    alice, bob, carol, dave = await accounts(network, "alice", "bob", "carol", "dave")
    now = datetime.now(UTC)
    async with serve_appview(appview_config(tmp_path, plc_url, url), upstream) as av:
        for n, who in enumerate((bob, carol)):
            follow = record("app.bsky.graph.follow", subject=who.did)
            await av.write(alice, {f"app.bsky.graph.follow/3kfffffffff{n + 2}2": follow})
        expected: list[tuple[str, str]] = []  # (createdAt, text), newest first once sorted
        for n, age in enumerate(AGES):
            author = (alice, bob, carol, dave)[n % 4]
            at = format_datetime(now - timedelta(minutes=age))
            text = f"post {n} by {author.did[-4:]}"
            event = await av.write(
                author,
                {f"app.bsky.feed.post/3kppppppppp{RKEYS[n]}2": {**post(text), "createdAt": at}},
            )
            if author is not dave:
                expected.append((at, text))
            if n == 5:
                # carol reposts one of bob's posts an hour and a half ago
                liked = ref(bob, event, f"app.bsky.feed.post/3kppppppppp{RKEYS[n]}2")
                repost_at = format_datetime(now - timedelta(minutes=90))
                repost = {**record("app.bsky.feed.repost", subject=liked), "createdAt": repost_at}
                await av.write(carol, {"app.bsky.feed.repost/3krrrrrrrrr22": repost})
                expected.append((repost_at, f"{text} (repost)"))
        expected.sort(reverse=True)
        for limit in (1, 2, 3, 50):
            seen: list[str] = []
            cursor = None
            while True:
                params = {"limit": limit} | ({"cursor": cursor} if cursor else {})
                page = await av.ok("app.bsky.feed.getTimeline", alice, **params)
                for item in page["feed"]:
                    reposted = item.get("reason", {}).get("$type", "").endswith("#reasonRepost")
                    text = item["post"]["record"]["text"]
                    seen.append(f"{text} (repost)" if reposted else text)
                cursor = page.get("cursor")
                if cursor is None:
                    break
            assert seen == [text for _, text in expected], limit

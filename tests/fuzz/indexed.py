"""A small network for the appview and feed generator under fuzzing: accounts on a fake upstream
(tests.relay.fake_pds) with records the services index, so that lookups get past "not found"."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from atcore.datamodel import from_json
from atcore.identity.plc_client import PlcClient
from tests.relay.fake_pds import FakeAccount, FakePds
from tests.relay.fake_pds import post as fake_post


def _record(collection: str, **fields: Any) -> dict[str, Any]:
    return {"$type": collection, "createdAt": "2024-01-01T00:00:00.000Z", **fields}


async def indexed_accounts(
    upstream: FakePds, plc: PlcClient, url: str, applied: Callable[[int], Awaitable[object]]
) -> FakeAccount:
    """Two accounts on a service's upstream that follow each other, with profiles, posts, a
    reply, a like and a repost, all applied (`applied(seq)` waits till the service has the
    event `seq`) before the fuzzing starts; the first is returned."""
    alice, bob = [upstream.add(await FakeAccount.create(plc, url, f"{n}.test")) for n in "ab"]
    avatar = {
        "$type": "blob",
        "ref": {"$link": "bafkreibme22gw2h7y2h7tg2fhqotaqjucnbc24deqo72b6mkl2egezxhvy"},
        "mimeType": "image/jpeg",
        "size": 1000,
    }
    path = "app.bsky.feed.post/3kaaaaaaaaaa2"
    posts = {}
    seq = 0
    for account, other in ((alice, bob), (bob, alice)):
        writes = {
            "app.bsky.actor.profile/self": _record(
                "app.bsky.actor.profile", displayName="Fuzz", avatar=avatar
            ),
            path: fake_post("hello"),
            "app.bsky.graph.follow/3kaaaaaaaaaa3": _record(
                "app.bsky.graph.follow", subject=other.did
            ),
        }
        event = account.commit({p: from_json(v) for p, v in writes.items()})
        (op,) = [op for op in event.ops if op.path == path]
        posts[account.did] = {"uri": f"at://{account.did}/{path}", "cid": op.cid.encode()}
        seq = await upstream.emit(event)
    theirs = posts[bob.did]
    writes = {
        "app.bsky.feed.post/3kaaaaaaaaaa4": {
            **fake_post("reply"),
            "reply": {"root": theirs, "parent": theirs},
        },
        "app.bsky.feed.like/3kaaaaaaaaaa5": _record("app.bsky.feed.like", subject=theirs),
        "app.bsky.feed.repost/3kaaaaaaaaaa6": _record("app.bsky.feed.repost", subject=theirs),
    }
    seq = await upstream.emit(alice.commit({p: from_json(v) for p, v in writes.items()}))
    await applied(seq)
    return alice

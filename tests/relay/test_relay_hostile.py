"""A hostile upstream next to a good one: nothing bad is forwarded, the good host keeps flowing,
and /metrics reports every rejection by its reason."""

from __future__ import annotations

import dataclasses

from atcore import cbor
from atcore.frames import CommitEvent, RepoOp
from atcore.keys import generate_k256
from tests.relay.conftest import Relay, Upstream, wait_until
from tests.relay.fake_pds import post, unchecked_frame

POST = "app.bsky.feed.post"


def misdescribed(event: CommitEvent) -> CommitEvent:
    (op,) = event.ops
    return dataclasses.replace(event, ops=(RepoOp(op.action, f"{POST}/elsewhere", op.cid),))


async def test_hostile_upstream_is_contained(
    relay: Relay, upstream: Upstream, upstream2: Upstream
) -> None:
    bad_host, good_host = upstream, upstream2
    mallory = await bad_host.account("mallory.test")
    victim = await bad_host.account("victim.test")
    alice = await good_host.account("alice.test")
    older = mallory.genesis.rev
    await bad_host.pds.emit(mallory.genesis)
    await good_host.pds.emit(alice.genesis)
    for hostname in (bad_host.hostname, good_host.hostname):
        r = await relay.client.post(
            "/xrpc/com.atproto.sync.requestCrawl", json={"hostname": hostname}
        )
        assert r.status_code == 200, r.text

    # None of these advance mallory's repo: the relay must keep its chain where it was.
    keep = {"advance": False}
    hostile = [
        mallory.commit({f"{POST}/f": post("forged")}, key=generate_k256(), **keep),
        mallory.commit({f"{POST}/d": post("whose?")}, did=victim.did, **keep),
        mallory.commit({f"{POST}/r": post("rewound")}, rev=older, **keep),
        # Ops that do not invert: the event claims a different path than the commit wrote.
        misdescribed(mallory.commit({f"{POST}/p": post("real path")}, **keep)),
        mallory.commit(
            {f"{POST}/big": cbor.encode({"$type": POST, "blob": b"\x00" * 1_100_000})}, **keep
        ),
        # The victim's DID document names the bad host, but mallory's key signed this.
        victim.commit({f"{POST}/v": post("impersonated")}, key=mallory.key, **keep),
    ]
    for event in hostile:
        await bad_host.pds.emit(event)
    # A valid commit after all that is accepted: the forgeries left the chain intact.
    good = mallory.commit({f"{POST}/ok": post("fine")})
    await bad_host.pds.emit(good)
    # Frames no decoder accepts end the connection: garbage bytes and a malformed body.
    await bad_host.pds.emit_raw(b"\xff\x00garbage")
    await bad_host.pds.emit_raw(unchecked_frame("#commit", {"seq": "nine", "repo": 1}))

    alice_events = [alice.commit({f"{POST}/a{i}": post(str(i))}) for i in range(5)]
    for event in alice_events:
        await good_host.pds.emit(event)

    expected = {
        "bad_signature": 2,  # the forged signature and the victim's commit with mallory's key
        "did_mismatch": 1,
        "rev_not_newer": 1,
        "inversion_failed": 1,
        "too_big": 1,
        "bad_frame": 1,
    }

    async def all_counted() -> bool:
        metrics = relay.ctx.metrics
        counts = metrics.by_label("relay_events_rejected_total", "reason")
        return (
            all(counts.get(reason, 0) >= n for reason, n in expected.items())
            and relay.ctx.writer.head >= 8
        )

    await wait_until(all_counted, timeout=20)
    assert relay.ctx.writer.head == 8  # no resync: the chain never broke
    events = await relay.events()
    forwarded = [(e.repo, e.rev) for e in events if isinstance(e, CommitEvent)]
    assert sorted(forwarded) == sorted(
        [
            (mallory.did, mallory.genesis.rev),
            (mallory.did, good.rev),
            (alice.did, alice.genesis.rev),
        ]
        + [(alice.did, e.rev) for e in alice_events]
    )
    assert victim.did not in {e.repo for e in events if isinstance(e, CommitEvent)}

    text = (await relay.client.get("/metrics")).text
    for reason in expected:
        assert f'relay_events_rejected_total{{reason="{reason}"}}' in text
    good_status = await relay.get("com.atproto.sync.getHostStatus", hostname=good_host.hostname)
    assert good_status.json()["status"] == "active"

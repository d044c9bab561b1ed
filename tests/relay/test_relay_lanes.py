"""DIDs of one host processed concurrently, in order per DID (relay.lanes, relay.hostcursor).

The PLC is reached through a proxy that can hold or delay the answers for chosen DIDs: one
account's slow identity lookup must not hold up the host's other accounts, every account's
events must reach the firehose in its upstream order, and a relay killed while a lookup is in
flight must resume without losing an event or emitting one twice.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from atcore.frames import AccountEvent, CommitEvent, IdentityEvent, decode_frame
from relay.config import RelayConfig
from relay.db import connect, events, hosts
from relay.hostcursor import HostCursor
from relay.lanes import Lanes
from skyloft.services import ServiceProcess
from tests.relay.conftest import Relay, Upstream, relay_env, serve_relay, wait_until
from tests.relay.fake_pds import TIME, FakeAccount, post
from tests.servers import serving_in_loop

POST = "app.bsky.feed.post"


class SlowPlc:
    """A proxy in front of the real PLC directory: answers for DIDs in `held` wait for their
    event, those in `delays` wait that many seconds."""

    def __init__(self, plc_url: str) -> None:
        self.plc_url = plc_url
        self.held: dict[str, asyncio.Event] = {}
        self.delays: dict[str, float] = {}
        self.asked: list[str] = []
        self.app = Starlette(routes=[Route("/{did}", self._get)])

    async def _get(self, request: Request) -> Response:
        did = request.path_params["did"]
        self.asked.append(did)
        if did in self.held:
            await self.held[did].wait()
        await asyncio.sleep(self.delays.get(did, 0.0))
        async with httpx.AsyncClient() as http:
            answer = await http.get(f"{self.plc_url}/{did}")
        return Response(answer.content, answer.status_code, media_type="application/json")


@asynccontextmanager
async def slow_plc(plc_url: str) -> AsyncIterator[tuple[SlowPlc, str]]:
    proxy = SlowPlc(plc_url)
    async with serving_in_loop(proxy.app) as url:
        yield proxy, url


def account_events(account: FakeAccount, commits: int) -> list[Any]:
    """What a PDS sends for a new account: #identity, #account, its first commits."""
    out: list[Any] = [
        IdentityEvent(0, account.did, TIME, None),
        AccountEvent(0, account.did, TIME, True),
        account.genesis,
    ]
    for n in range(commits):
        out.append(account.commit({f"{POST}/{account.clock.next()}": post(f"n{n}")}))
    return out


def interleaved(streams: Sequence[list[Any]]) -> list[Any]:
    """Round-robin over the accounts' events, each account's in its own order."""
    out = []
    for step in range(max(map(len, streams))):
        out += [stream[step] for stream in streams if step < len(stream)]
    return out


def key(event: Any) -> tuple[str, str]:
    """What identifies an upstream event on the relay's firehose (its seq is the relay's)."""
    if isinstance(event, CommitEvent):
        return event.repo, f"commit {event.rev}"
    return event.did, type(event).__name__


def by_did(emitted: Sequence[Any]) -> dict[str, list[tuple[str, str]]]:
    out: dict[str, list[tuple[str, str]]] = {}
    for event in emitted:
        out.setdefault(key(event)[0], []).append(key(event))
    return out


async def crawl(relay: Relay, upstream: Upstream) -> None:
    r = await relay.client.post(
        "/xrpc/com.atproto.sync.requestCrawl", json={"hostname": upstream.hostname}
    )
    assert r.status_code == 200, r.text


async def emitted_count(relay: Relay, count: int, timeout: float = 15.0) -> None:
    async def reached() -> bool:
        return relay.ctx.writer.head >= count

    await wait_until(reached, timeout)


# --- the parts --------------------------------------------------------------------------------


def test_the_cursor_is_the_finished_prefix_and_done_events_are_skipped_after_it() -> None:
    position = HostCursor(1, 10, (), limit=3)
    for seq in (11, 12, 14):
        assert position.begin(seq)
    assert position.full()
    # A batch writes 12 and 14 while 11 is in flight: the cursor stays, both become done.
    assert position.advance({12, 14}) == (10, [12, 14])
    position.finish(12)
    position.finish(14)
    assert position.cursor == 10
    assert position.advance({11}) == (14, [])  # the batch writing 11 closes the gap
    # A restart from (10, done 12 and 14) reads 11, 12, 14 again and skips 12 and 14.
    again = HostCursor(1, 10, [9, 12, 14], limit=3)
    assert [again.begin(seq) for seq in (11, 12, 14)] == [True, False, False]
    assert again.cursor == 10
    again.finish(11)
    assert (again.cursor, len(again)) == (14, 0)
    # Reconnecting with an event unfinished (its write failed): it is read again, the
    # finished ones after it are not.
    for seq in (15, 16):
        again.begin(seq)
    again.finish(16)
    assert again.resume() == 14
    assert [again.begin(seq) for seq in (15, 16)] == [True, False]


async def test_lanes_keep_each_keys_order_and_bound_how_many_run() -> None:
    ran: list[tuple[str, int]] = []
    running = 0
    most = 0

    async def run(item: tuple[str, int]) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(random.uniform(0, 0.003))
        ran.append(item)
        running -= 1

    lanes: Lanes[tuple[str, int]] = Lanes(run, concurrency=3)
    items = [(f"did{n % 7}", n) for n in range(140)]
    for did, n in items:
        lanes.add(did, (did, n))
    await lanes.drain()
    assert sorted(ran) == sorted(items) and lanes.error is None
    for did in {d for d, _ in items}:
        assert [n for d, n in ran if d == did] == [n for d, n in items if d == did]
    assert most == 3
    assert ran != items  # different keys did finish out of order


async def test_waiting_lists_a_dids_events_behind_the_one_running() -> None:
    seen: dict[int, list[int]] = {}

    async def run(item: int) -> None:
        if item < 9:
            seen[item] = list(lanes.waiting("a"))  # what ingest.start_checks is given
        await asyncio.sleep(0)

    lanes: Lanes[int] = Lanes(run, concurrency=2)
    for n in (1, 2, 3):
        lanes.add("a", n)
    lanes.add("b", 9)
    await lanes.drain()
    assert seen == {1: [2, 3], 2: [3], 3: []}
    assert list(lanes.waiting("a")) == []


# --- the relay --------------------------------------------------------------------------------


@pytest.mark.integration
async def test_each_dids_order_is_kept_while_a_hosts_dids_interleave(
    tmp_path: Path, plc_url: str, upstream: Upstream
) -> None:
    async with slow_plc(plc_url) as (proxy, proxy_url):
        accounts = [await upstream.account(f"u{n}.test") for n in range(8)]
        for account in accounts:  # lookups finish in another order than they start
            proxy.delays[account.did] = random.uniform(0.0, 0.08)
        sent = interleaved([account_events(a, 3) for a in accounts])
        for event in sent:
            await upstream.pds.emit(event)
        config = RelayConfig.load(relay_env(proxy_url), data_dir=str(tmp_path / "relay"))
        async for relay in serve_relay(config):
            await crawl(relay, upstream)
            await emitted_count(relay, len(sent))
            emitted = await relay.events()
            assert [e.seq for e in emitted] == list(range(1, len(sent) + 1))
            assert by_did(emitted) == by_did(sent)
            host = relay.ctx.crawler.consumers[upstream.hostname]
            await relay.ctx.crawler.flush(host)
            stored = await relay.ctx.db.read(hosts.position, host.host.id)
            assert stored == (len(sent), [])


@pytest.mark.integration
async def test_a_slow_identity_lookup_holds_up_only_its_own_did(
    tmp_path: Path, plc_url: str, upstream: Upstream
) -> None:
    async with slow_plc(plc_url) as (proxy, proxy_url):
        slow, *others = [await upstream.account(f"u{n}.test") for n in range(3)]
        proxy.held[slow.did] = asyncio.Event()
        streams = [account_events(a, 2) for a in (slow, *others)]
        for event in interleaved(streams):
            await upstream.pds.emit(event)
        config = RelayConfig.load(relay_env(proxy_url), data_dir=str(tmp_path / "relay"))
        async for relay in serve_relay(config):
            await crawl(relay, upstream)
            # The relay gives up on a lookup after 3 s: the others must pass well before.
            await emitted_count(relay, len(streams[1]) + len(streams[2]), timeout=2.5)
            emitted = await relay.events()
            assert slow.did not in by_did(emitted)
            assert proxy.asked.count(slow.did) == 1  # still waiting for its answer
            proxy.held[slow.did].set()
            await emitted_count(relay, sum(map(len, streams)))
            assert by_did(await relay.events()) == by_did(interleaved(streams))


def log_events(data_dir: Path) -> list[Any]:
    conn = connect(data_dir / "relay.sqlite")
    try:
        return [decode_frame(frame) for _, frame in events.frames_after(conn, 0, 10_000)]
    finally:
        conn.close()


def stored_position(data_dir: Path, hostname: str) -> tuple[int, list[int]]:
    conn = connect(data_dir / "relay.sqlite")
    try:
        host = hosts.get(conn, hostname)
        assert host is not None
        return hosts.position(conn, host.id)
    finally:
        conn.close()


@pytest.mark.integration
@pytest.mark.slow
async def test_a_relay_killed_during_a_slow_lookup_loses_and_repeats_nothing(
    tmp_path: Path, plc_url: str, upstream: Upstream
) -> None:
    async with slow_plc(plc_url) as (proxy, proxy_url):
        slow, *others = [await upstream.account(f"u{n}.test") for n in range(3)]
        proxy.held[slow.did] = asyncio.Event()
        streams = [account_events(a, 2) for a in (slow, *others)]
        sent = interleaved(streams)
        seqs = [await upstream.pds.emit(event) for event in sent]
        env = relay_env(proxy_url, RELAY_HOSTS=upstream.hostname)
        data = tmp_path / "relay"
        start = partial(ServiceProcess, "relay", data, env=env)
        relay = await asyncio.to_thread(start)
        try:
            others_count = len(sent) - len(streams[0])

            async def others_durable() -> bool:
                return data.joinpath("relay.sqlite").exists() and (
                    len(await asyncio.to_thread(log_events, data)) >= others_count
                )

            await wait_until(others_durable, timeout=2.5)
            assert proxy.asked.count(slow.did) == 1  # its lookup is still in flight
            os.kill(relay.pid, signal.SIGKILL)
            await asyncio.to_thread(relay.proc.wait)
        finally:
            await asyncio.to_thread(relay.stop)
        emitted = log_events(data)
        assert slow.did not in by_did(emitted) and len(emitted) == others_count
        # The cursor stopped before the slow account's first event; what finished after it
        # is remembered as done.
        first_slow = seqs[0]
        others_seqs = [seq for seq, e in zip(seqs, sent, strict=True) if key(e)[0] != slow.did]
        cursor, done = stored_position(data, upstream.hostname)
        assert cursor == first_slow - 1
        assert done == [seq for seq in others_seqs if seq > cursor]

        proxy.held[slow.did].set()
        relay = await asyncio.to_thread(start)
        try:

            async def all_durable() -> bool:
                return len(await asyncio.to_thread(log_events, data)) >= len(sent)

            await wait_until(all_durable)
            await asyncio.sleep(0.5)  # time for a duplicate to show up
        finally:
            await asyncio.to_thread(relay.stop)
        emitted = log_events(data)
        assert len(emitted) == len(sent)
        assert by_did(emitted) == by_did(sent)
        assert stored_position(data, upstream.hostname) == (seqs[-1], [])

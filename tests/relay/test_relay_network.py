"""The relay as a real process crawling two real PDS processes, with restarts of each.

A consumer checks every event it receives (signature and inversion with our code, parsing
with the PyPI atproto SDK); after a relay restart it resumes from its cursor with nothing lost
or repeated, and after a PDS restart the relay catches up from its persisted cursor.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from atproto import firehose_models, parse_subscribe_repos_message
from websockets.asyncio.client import connect

from atcore.frames import CommitEvent, decode_frame
from atcore.keys import PublicKey, parse_multibase_key
from skyloft.services import ServiceProcess
from tests.pds.conftest import pds_env
from tests.pds.repo_env import check_commit_event
from tests.relay.conftest import relay_env

pytestmark = [pytest.mark.integration, pytest.mark.slow]

POST = "app.bsky.feed.post"
PASSWORD = "correct horse battery staple"
TIMEOUT = 30.0


class Writer:
    """An account on one PDS that writes posts and remembers every acknowledged commit."""

    def __init__(self, pds_url: str, handle: str) -> None:
        self.pds_url = pds_url
        self.handle = handle
        self.did = ""
        self.token = ""
        self.revs: list[str] = []

    async def create(self, http: httpx.AsyncClient) -> None:
        body = {"handle": self.handle, "email": f"{self.handle}@x.test", "password": PASSWORD}
        r = await http.post(f"{self.pds_url}/xrpc/com.atproto.server.createAccount", json=body)
        assert r.status_code == 200, r.text
        self.did, self.token = r.json()["did"], r.json()["accessJwt"]

    async def post(self, http: httpx.AsyncClient, count: int) -> None:
        for i in range(count):
            record = {"$type": POST, "text": f"{i}", "createdAt": "2025-01-01T00:00:00.000Z"}
            r = await http.post(
                f"{self.pds_url}/xrpc/com.atproto.repo.createRecord",
                json={"repo": self.did, "collection": POST, "record": record},
                headers={"authorization": f"Bearer {self.token}"},
            )
            assert r.status_code == 200, r.text
            self.revs.append(r.json()["commit"]["rev"])


class Consumer:
    """Reads the relay's firehose from a cursor, keeping every raw frame."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.cursor = 0

    def commits(self) -> set[tuple[str, str]]:
        out = set()
        for frame in self.frames:
            event = decode_frame(frame)
            if isinstance(event, CommitEvent):
                out.add((event.repo, event.rev))
        return out

    async def read_until(self, relay_url: str, wanted: set[tuple[str, str]]) -> None:
        url = relay_url.replace("http://", "ws://") + "/xrpc/com.atproto.sync.subscribeRepos"
        async with asyncio.timeout(TIMEOUT), connect(f"{url}?cursor={self.cursor}") as ws:
            while not wanted <= self.commits():
                frame = await ws.recv()
                assert isinstance(frame, bytes)
                self.frames.append(frame)
                event = decode_frame(frame)
                self.cursor = getattr(event, "seq", self.cursor)


async def wait_for_hosts(http: httpx.AsyncClient, relay_url: str, count: int) -> None:
    async with asyncio.timeout(TIMEOUT):
        while True:
            r = await http.get(f"{relay_url}/xrpc/com.atproto.sync.listHosts")
            if len(r.json()["hosts"]) >= count:
                return
            await asyncio.sleep(0.1)


def wanted(*writers: Writer) -> set[tuple[str, str]]:
    return {(w.did, rev) for w in writers for rev in w.revs}


async def signing_key(http: httpx.AsyncClient, plc_url: str, did: str) -> PublicKey:
    doc = (await http.get(f"{plc_url}/{did}")).json()
    return parse_multibase_key(doc["verificationMethod"][0]["publicKeyMultibase"])


def check_frames(frames: list[bytes], keys: dict[str, PublicKey]) -> None:
    seqs = []
    for frame in frames:
        event: Any = decode_frame(frame)
        seqs.append(event.seq)
        if isinstance(event, CommitEvent):
            check_commit_event(event, keys[event.repo])
        # An independent decoder agrees on every frame.
        parsed = parse_subscribe_repos_message(firehose_models.MessageFrame.from_bytes(frame))
        assert parsed.seq == event.seq
    assert seqs == list(range(1, len(seqs) + 1)), "the relay's seqs have a gap or a duplicate"


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


async def test_two_pdses_relay_restart_and_pds_restart(tmp_path: Path, plc_url: str) -> None:
    consumer = Consumer()
    services: list[ServiceProcess] = []

    def start(service: str, name: str, env: dict[str, str], port: int = 0) -> ServiceProcess:
        process = ServiceProcess(service, tmp_path / name, port=port, env=env)
        services.append(process)
        return process

    def stop(process: ServiceProcess) -> None:
        services.remove(process)
        assert process.stop() == 0, process.log_tail()

    try:
        async with httpx.AsyncClient(timeout=10) as http:
            relay = start("relay", "relay", relay_env(plc_url))
            crawl = pds_env(plc_url, PDS_CRAWLERS=relay.url)
            pds1, pds2 = start("pds", "pds1", crawl), start("pds", "pds2", crawl)
            await wait_for_hosts(http, relay.url, 2)
            alice, bob = Writer(pds1.url, "alice.test"), Writer(pds2.url, "bob.test")
            for writer in (alice, bob):
                await writer.create(http)
            await asyncio.gather(alice.post(http, 5), bob.post(http, 5))
            await consumer.read_until(relay.url, wanted(alice, bob))
            before_restart = len(consumer.frames)

            # Relay restart: what the PDSes sequence meanwhile arrives from the relay's
            # persisted cursors; the consumer resumes from its own cursor.
            stop(relay)
            await asyncio.gather(alice.post(http, 3), bob.post(http, 3))
            relay = start("relay", "relay", relay_env(plc_url), port=port_of(relay.url))
            await consumer.read_until(relay.url, wanted(alice, bob))
            assert len(consumer.frames) > before_restart

            # PDS restart: the relay reconnects (backoff) and catches up from its cursor.
            stop(pds1)
            pds1 = start("pds", "pds1", crawl, port=port_of(pds1.url))
            await alice.post(http, 3)
            await consumer.read_until(relay.url, wanted(alice, bob))
            status = await http.get(
                f"{relay.url}/xrpc/com.atproto.sync.getRepoStatus", params={"did": alice.did}
            )
            assert status.json() == {"did": alice.did, "active": True, "rev": alice.revs[-1]}
            keys = {w.did: await signing_key(http, plc_url, w.did) for w in (alice, bob)}
    finally:
        for process in reversed(services):
            process.stop()
    check_frames(consumer.frames, keys)
    pairs = [
        (e.repo, e.rev) for e in map(decode_frame, consumer.frames) if isinstance(e, CommitEvent)
    ]
    assert len(pairs) == len(set(pairs)), "a commit was delivered twice"
    assert set(pairs) >= wanted(alice, bob)

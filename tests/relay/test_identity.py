"""relay.identity: bounded, shared DID lookups over the PLC client's keep-alive connections,
and the PLC client's limits, against real HTTP servers on a loopback port (a PLC stand-in that
serves one document and can stall; a server of canned answers)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest

from atcore.errors import DidNotFound, ResolutionFailed, ResponseTooLarge
from atcore.identity.resolver import IdentityResolver
from atcore.keys import generate_k256
from relay.identity import BoundedResolver, PlcClient

DID = "did:plc:ewvi7nxzyoun6zhxrhs64oiz"
SLOW = "did:plc:slowslowslowslowslowslow"


@dataclass
class Plc:
    port: int
    paths: list[str] = field(default_factory=list)
    connections: int = 0


def document(did: str) -> bytes:
    key = generate_k256().public_key().multibase()
    return json.dumps(
        {
            "id": did,
            "alsoKnownAs": ["at://alice.test"],
            "verificationMethod": [
                {
                    "id": f"{did}#atproto",
                    "type": "Multikey",
                    "controller": did,
                    "publicKeyMultibase": key,
                }
            ],
            "service": [
                {
                    "id": "#atproto_pds",
                    "type": "AtprotoPersonalDataServer",
                    "serviceEndpoint": "http://localhost:2583",
                }
            ],
        }
    ).encode()


@pytest.fixture
async def plc() -> AsyncIterator[Plc]:
    """Answers GET /<did> with a document after 20 ms; never answers for SLOW."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        server.connections += 1
        try:
            while (head := await reader.readuntil(b"\r\n\r\n")) is not None:
                path = head.split(b" ", 2)[1].decode()
                server.paths.append(path)
                if path == f"/{SLOW}":
                    await asyncio.sleep(3600)
                await asyncio.sleep(0.02)
                body = document(path[1:])
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                    + f"content-length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            writer.close()

    listener = await asyncio.start_server(serve, "127.0.0.1", 0)
    server = Plc(listener.sockets[0].getsockname()[1])
    async with listener:
        yield server
        listener.close()


@asynccontextmanager
async def resolver(plc: Plc, limit: int, timeout: float = 3.0) -> AsyncIterator[BoundedResolver]:
    client = PlcClient(limit)
    url = f"http://127.0.0.1:{plc.port}"
    async with IdentityResolver(url, timeout=timeout, plc_get=client.get) as inner:
        try:
            yield BoundedResolver(inner, limit)
        finally:
            await client.aclose()


async def test_lookups_of_one_did_share_one_request(plc: Plc) -> None:
    async with resolver(plc, 4) as bounded:
        docs = await asyncio.gather(*(bounded.resolve_did(DID) for _ in range(10)))
        assert {doc.did for doc in docs} == {DID}
        assert plc.paths == [f"/{DID}"]
        await bounded.refresh(DID)  # a refresh always asks again
        assert plc.paths == [f"/{DID}", f"/{DID}"]


async def test_lookups_in_flight_are_bounded_and_reuse_connections(plc: Plc) -> None:
    async with resolver(plc, 3) as bounded:
        dids = [f"did:plc:{'a' * 23}{chr(ord('a') + i)}" for i in range(12)]
        docs = await asyncio.gather(*(bounded.resolve_did(did) for did in dids))
        assert [doc.did for doc in docs] == dids
        assert plc.connections == 3  # each slot kept its connection alive
        assert sorted(plc.paths) == sorted(f"/{did}" for did in dids)


async def test_lookups_that_time_out_leave_no_slot_taken(plc: Plc) -> None:
    """Many stalled lookups past their deadline (cancelled inside the client), then good ones:
    each still gets an answer (httpx's pool leaked the slots of cancelled requests)."""
    async with resolver(plc, 2, timeout=0.1) as bounded:
        stalled = await asyncio.gather(
            *(bounded.refresh(SLOW) for _ in range(8)), return_exceptions=True
        )
        assert all(isinstance(result, ResolutionFailed) for result in stalled)
        docs = await asyncio.gather(*(bounded.resolve_did(f"{DID[:-1]}{c}") for c in "abcd"))
        assert len(docs) == 4


async def test_a_cancelled_caller_leaves_the_shared_lookup_to_the_others(plc: Plc) -> None:
    async with resolver(plc, 2) as bounded:
        first = asyncio.create_task(bounded.resolve_did(DID))
        second = asyncio.create_task(bounded.resolve_did(DID))
        await asyncio.sleep(0.005)
        first.cancel()
        assert (await second).did == DID
        assert plc.paths == [f"/{DID}"]


# --- the PLC client's limits (atcore.identity.fetch.bounded_get's) ---


def answer(status: int, body: bytes = b"", *headers: str) -> bytes:
    head = [f"HTTP/1.1 {status} X", f"content-length: {len(body)}", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


@pytest.fixture
async def canned() -> AsyncIterator[tuple[str, dict[str, bytes]]]:
    """A server answering each path with the raw bytes set for it (and never for others);
    yields its URL and the answers to fill in."""
    answers: dict[str, bytes] = {}

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                path = head.split(b" ", 2)[1].decode()
                if path not in answers:
                    await asyncio.sleep(3600)
                writer.write(answers[path])
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            writer.close()

    listener = await asyncio.start_server(serve, "127.0.0.1", 0)
    async with listener:
        yield f"http://127.0.0.1:{listener.sockets[0].getsockname()[1]}", answers
        listener.close()


async def fetch(url: str, timeout: float = 3.0, max_bytes: int = 100) -> tuple[int, bytes, str]:
    client = PlcClient(2)
    try:
        got = await client.get(url, max_bytes=max_bytes, timeout=timeout, accept="*/*")
    finally:
        await client.aclose()
    return got.status, got.body, got.url


async def test_plc_client_follows_up_to_three_redirects(
    canned: tuple[str, dict[str, bytes]],
) -> None:
    base, answers = canned
    for hop in range(4):
        answers[f"/{hop}"] = answer(302, b"", f"location: /{hop + 1}")
    answers["/4"] = answer(200, b"{}")
    assert await fetch(f"{base}/1") == (200, b"{}", f"{base}/4")
    with pytest.raises(ResolutionFailed, match="redirect"):
        await fetch(f"{base}/0")


async def test_plc_client_refuses_what_bounded_get_refuses(
    canned: tuple[str, dict[str, bytes]],
) -> None:
    base, answers = canned
    answers["/big"] = answer(200, b"x" * 101)
    answers["/chunked"] = (
        b"HTTP/1.1 200 X\r\ntransfer-encoding: chunked\r\n\r\n"
        + b"40\r\n"
        + b"y" * 64
        + b"\r\n40\r\n"
        + b"y" * 64
        + b"\r\n0\r\n\r\n"
    )
    answers["/gzip"] = answer(200, b"\x1f\x8b", "content-encoding: gzip")
    answers["/ftp"] = answer(302, b"", "location: ftp://127.0.0.1/x")
    with pytest.raises(ResponseTooLarge, match="101 bytes"):
        await fetch(f"{base}/big")
    with pytest.raises(ResponseTooLarge, match="exceeds"):
        await fetch(f"{base}/chunked")
    with pytest.raises(ResolutionFailed, match="gzip"):
        await fetch(f"{base}/gzip")
    with pytest.raises(ResolutionFailed):
        await fetch(f"{base}/ftp")
    with pytest.raises(ResolutionFailed, match="within"):
        await fetch(f"{base}/silent", timeout=0.1)
    with pytest.raises(ResolutionFailed, match="failed"):
        await fetch("http://127.0.0.1:1/refused")


async def test_plc_client_answers_reach_the_resolver(canned: tuple[str, dict[str, bytes]]) -> None:
    base, answers = canned
    answers[f"/{DID}"] = answer(200, document(DID))
    answers[f"/{SLOW}"] = answer(404, b"{}")
    client = PlcClient(2)
    async with IdentityResolver(base, plc_get=client.get) as inner:
        assert (await inner.resolve_did(DID)).did == DID
        with pytest.raises(DidNotFound):
            await inner.resolve_did(SLOW)
    await client.aclose()

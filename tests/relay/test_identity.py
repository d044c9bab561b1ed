"""relay.identity: bounded, shared DID lookups on one-connection transports, against a real
HTTP server on a loopback port (a PLC stand-in that serves one document and can stall)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx
import pytest

from atcore.errors import ResolutionFailed
from atcore.identity.resolver import IdentityResolver
from atcore.keys import generate_k256
from relay.identity import BoundedResolver, PlcTransport

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
    async with httpx.AsyncClient(transport=PlcTransport(limit)) as http:
        inner = IdentityResolver(f"http://127.0.0.1:{plc.port}", http, timeout=timeout)
        yield BoundedResolver(inner, limit)


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
    """Many stalled lookups past their deadline (cancelled inside httpx), then good ones: each
    still gets an answer (httpx's own pool can leak the slots of cancelled requests)."""
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

"""The did:plc directory over HTTP: a real server for the wire, the ASGI app for time travel."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from atcore.identity.plc import (
    did_for_genesis,
    op_cid,
    sign_operation,
    tombstone_op,
    update_op,
)
from atcore.identity.plc_log import LogEntry, validate_log
from atcore.keys import generate_k256
from runtime.serve import SERVER_ENV, SERVERS
from tests.plc.support import Account, Clock, create_did, post_op
from tests.servers import running_service


@pytest.fixture
def plc_url(tmp_path: Path) -> Iterator[str]:
    with running_service("plc", tmp_path / "plc") as url:
        yield url


@pytest.fixture
async def remote(plc_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=plc_url, timeout=10) as client:
        yield client


@pytest.mark.integration
async def test_create_update_and_resolve(remote: httpx.AsyncClient) -> None:
    account = Account()
    did, genesis = await create_did(remote, account)
    doc = await remote.get(f"/{did}")
    assert doc.status_code == 200
    assert doc.headers["content-type"].startswith("application/did+ld+json")
    assert doc.json()["alsoKnownAs"] == ["at://alice.test"]
    assert doc.json()["verificationMethod"][0]["publicKeyMultibase"] == (
        account.signing.public_key().multibase()
    )
    update = update_op(genesis, op_cid(genesis), handle="bob.test", pds="https://new.test")
    assert (await post_op(remote, did, sign_operation(update, account.rotation))).status_code == 200
    data = (await remote.get(f"/{did}/data")).json()
    assert data["did"] == did and data["alsoKnownAs"] == ["at://bob.test"]
    assert data["services"]["atproto_pds"]["endpoint"] == "https://new.test"
    log = (await remote.get(f"/{did}/log")).json()
    assert [op_cid(op) for op in log] == [op_cid(genesis), op_cid(log[1])]
    assert (await remote.get(f"/{did}/log/last")).json() == log[1]
    audit = (await remote.get(f"/{did}/log/audit")).json()
    assert [set(e) for e in audit] == [{"did", "operation", "cid", "nullified", "createdAt"}] * 2
    # The served audit log is itself a valid, verifiable log.
    state = validate_log(did, [LogEntry.from_json(e) for e in audit])
    assert state.data()["alsoKnownAs"] == ["at://bob.test"]
    assert (await remote.get("/did:plc:aaaaaaaaaaaaaaaaaaaaaaaa/log/audit")).status_code == 404


@pytest.mark.integration
async def test_tombstone_is_gone(remote: httpx.AsyncClient) -> None:
    account = Account()
    did, genesis = await create_did(remote, account)
    tomb = sign_operation(tombstone_op(op_cid(genesis)), account.rotation)
    assert (await post_op(remote, did, tomb)).status_code == 200
    for path in (f"/{did}", f"/{did}/data"):
        response = await remote.get(path)
        assert response.status_code == 410
        assert response.json() == {"message": f"DID not available: {did}"}
    assert (await remote.get(f"/{did}/log/last")).json()["type"] == "plc_tombstone"
    again = sign_operation(update_op(genesis, op_cid(tomb)), account.rotation)
    response = await post_op(remote, did, {**again, "prev": op_cid(tomb)})
    assert response.status_code == 400 and "tombstone" in response.json()["message"]


@pytest.mark.integration
async def test_export_pages(remote: httpx.AsyncClient) -> None:
    dids = [(await create_did(remote, Account()))[0] for _ in range(3)]
    legacy = (await remote.get("/export", params={"count": 2})).text.splitlines()
    first = [json.loads(line) for line in legacy]
    assert [e["did"] for e in first] == dids[:2]
    assert all(set(e) == {"did", "operation", "cid", "nullified", "createdAt"} for e in first)
    rest = await remote.get("/export", params={"after": first[-1]["createdAt"]})
    assert [json.loads(line)["did"] for line in rest.text.splitlines()] == dids[2:] or (
        # Same-millisecond operations share a createdAt cursor: the legacy format's known gap.
        first[-1]["createdAt"] == json.loads(legacy[0])["createdAt"]
    )
    sequenced = [json.loads(x) for x in (await remote.get("/export?after=0")).text.splitlines()]
    assert [e["type"] for e in sequenced] == ["sequenced_op"] * 3
    assert [e["did"] for e in sequenced] == dids
    seqs = [e["seq"] for e in sequenced]
    assert seqs == sorted(set(seqs))
    after = await remote.get("/export", params={"after": seqs[0]})
    assert [json.loads(x)["seq"] for x in after.text.splitlines()] == seqs[1:]
    for bad in ({"count": "abc"}, {"count": "0"}, {"after": "yesterday"}):
        response = await remote.get("/export", params=bad)
        assert (
            response.status_code == 400 and "Invalid Query Parameter" in response.json()["message"]
        )


@pytest.mark.integration
async def test_conflicting_updates_exactly_one_wins(remote: httpx.AsyncClient) -> None:
    account = Account()
    did, genesis = await create_did(remote, account)
    updates = [
        sign_operation(update_op(genesis, op_cid(genesis), handle=f"h{i}.test"), account.rotation)
        for i in range(4)
    ]
    responses = await asyncio.gather(*(post_op(remote, did, op) for op in updates))
    assert sorted(r.status_code for r in responses) == [200, 400, 400, 400]
    audit = (await remote.get(f"/{did}/log/audit")).json()
    winner = updates[[r.status_code for r in responses].index(200)]
    assert [e["cid"] for e in audit] == [op_cid(genesis), op_cid(winner)]
    assert not any(e["nullified"] for e in audit)


def _bad_bodies() -> list[tuple[str, Any]]:
    return [
        ("garbage-json", b"{not json"),
        ("deep-json", b"[" * 50_000),
        ("not-an-object", b"[1, 2]"),
        ("wrong-signature", "wrong-signature"),
        ("bad-prev", "bad-prev"),
        ("oversized", b"{" + b" " * 70_000 + b"}"),
    ]


@pytest.mark.integration
@pytest.mark.parametrize("kind,body", _bad_bodies(), ids=[b[0] for b in _bad_bodies()])
async def test_bad_input_rejected_and_nothing_stored(
    remote: httpx.AsyncClient, kind: str, body: Any
) -> None:
    account = Account()
    genesis = account.genesis()
    did = did_for_genesis(genesis)
    if body == "wrong-signature":
        # Self-consistent DID, but signed by a key that is not one of its rotation keys.
        forged = sign_operation(genesis, generate_k256())
        did, body = did_for_genesis(forged), json.dumps(forged)
    elif body == "bad-prev":
        _, genesis = await create_did(remote, account)
        stray = update_op(genesis, "bafyreigp6shzy6dlcxuowwoxz7u5nemdrkad2my5zwzpwilcnhih7bw6zm")
        body = json.dumps(sign_operation(stray, account.rotation))
    before = (await remote.get(f"/{did}/log/audit")).text
    response = await remote.post(f"/{did}", content=body)
    assert response.status_code == (413 if kind == "oversized" else 400)
    assert isinstance(response.json()["message"], str) and response.json()["message"]
    assert (await remote.get(f"/{did}/log/audit")).text == before


@pytest.mark.parametrize(
    "params,fragment",
    [
        ({"count": "\u00b2"}, "count must be a positive integer"),
        ({"count": "9" * 5000}, "count must be a positive integer"),
        ({"count": "-1"}, "count must be a positive integer"),
        ({"after": "\u00b2"}, "after must be a sequence number or a datetime"),
        ({"after": "\u0663"}, "after must be a sequence number or a datetime"),
        ({"after": "0001-01-01T00:00:00+01:00"}, "after must be a sequence number or a datetime"),
        ({"after": "9999-12-31T23:59:59-01:00"}, "after must be a sequence number or a datetime"),
        ({"after": "9" * 5000}, "after is over the largest sequence"),
        ({"after": str(2**63)}, "after is over the largest sequence"),
    ],
)
async def test_export_refuses_bad_numbers(
    local: tuple[httpx.AsyncClient, Clock], params: dict[str, str], fragment: str
) -> None:
    client, _ = local
    response = await client.get("/export", params=params)
    assert response.status_code == 400
    assert fragment in response.json()["message"]


async def test_export_accepts_the_largest_sequence_number(
    local: tuple[httpx.AsyncClient, Clock],
) -> None:
    client, _ = local
    await create_did(client, Account())
    for after, lines in ((str(2**63 - 1), 0), ("0" * 5000, 1)):
        response = await client.get("/export", params={"after": after, "count": "1" + "0" * 8})
        assert response.status_code == 200 and len(response.text.splitlines()) == lines


@pytest.mark.parametrize("field", ["services", "verificationMethods", "alsoKnownAs"])
async def test_lone_surrogate_is_400_and_nothing_stored(
    local: tuple[httpx.AsyncClient, Clock], field: str
) -> None:
    """JSON "\\ud800" decodes to a str the CBOR encoder cannot take (in a map key beside
    another key it raised SystemError: a 500); refused on a genesis and on an update."""
    client, _ = local
    account = Account()
    did, genesis = await create_did(client, account)
    update = sign_operation(update_op(genesis, op_cid(genesis)), account.rotation)
    fresh = Account().genesis()
    for target, op in ((did_for_genesis(fresh), fresh), (did, update)):
        bad = dict(op)
        if field == "alsoKnownAs":
            bad[field] = ["at://\ud800.test"]
        else:
            bad[field] = {**op[field], "\ud800": next(iter(op[field].values()))}
        body = json.dumps(bad)
        assert "\\ud800" in body
        before = (await client.get(f"/{target}/log/audit")).text
        response = await client.post(f"/{target}", content=body)
        assert response.status_code == 400
        assert "surrogate" in response.json()["message"]
        assert (await client.get(f"/{target}/log/audit")).text == before


async def test_recovery_within_72h_nullifies(local: tuple[httpx.AsyncClient, Clock]) -> None:
    client, clock = local
    account = Account()
    did, genesis = await create_did(client, account)
    clock.now += timedelta(hours=1)
    hijack = update_op(genesis, op_cid(genesis), handle="mallory.test")
    hijack = sign_operation(hijack, account.rotation)
    assert (await post_op(client, did, hijack)).status_code == 200
    recover = sign_operation(update_op(genesis, op_cid(genesis)), account.recovery)
    weak = sign_operation(
        update_op(genesis, op_cid(genesis), pds="https://x.test"), account.rotation
    )
    clock.now += timedelta(hours=72)
    response = await post_op(client, did, weak)
    assert response.status_code == 400 and "listed before" in response.json()["message"]
    assert (await post_op(client, did, recover)).status_code == 200
    audit = (await client.get(f"/{did}/log/audit")).json()
    assert [(e["cid"], e["nullified"]) for e in audit] == [
        (op_cid(genesis), False),
        (op_cid(hijack), True),
        (op_cid(recover), False),
    ]
    assert audit[1]["createdAt"] == "2025-06-01T13:00:00.000Z"
    assert (await client.get(f"/{did}")).json()["alsoKnownAs"] == ["at://alice.test"]
    assert [op_cid(op) for op in (await client.get(f"/{did}/log")).json()] == [
        op_cid(genesis),
        op_cid(recover),
    ]
    exported = [json.loads(x) for x in (await client.get("/export")).text.splitlines()]
    assert [e["nullified"] for e in exported] == [False, True, False]


async def test_recovery_after_72h_rejected(local: tuple[httpx.AsyncClient, Clock]) -> None:
    client, clock = local
    account = Account()
    did, genesis = await create_did(client, account)
    hijack = sign_operation(update_op(genesis, op_cid(genesis), handle="m.test"), account.rotation)
    clock.now += timedelta(seconds=1)
    assert (await post_op(client, did, hijack)).status_code == 200
    clock.now += timedelta(hours=72, milliseconds=1)
    recover = sign_operation(update_op(genesis, op_cid(genesis)), account.recovery)
    response = await post_op(client, did, recover)
    assert response.status_code == 400 and "recovery window" in response.json()["message"]
    assert len((await client.get(f"/{did}/log/audit")).json()) == 2


async def test_tombstone_undone_within_window(local: tuple[httpx.AsyncClient, Clock]) -> None:
    client, clock = local
    account = Account()
    did, genesis = await create_did(client, account)
    tomb = sign_operation(tombstone_op(op_cid(genesis)), account.rotation)
    assert (await post_op(client, did, tomb)).status_code == 200
    assert (await client.get(f"/{did}")).status_code == 410
    clock.now += timedelta(hours=71)
    recover = sign_operation(update_op(genesis, op_cid(genesis)), account.recovery)
    assert (await post_op(client, did, recover)).status_code == 200
    assert (await client.get(f"/{did}")).status_code == 200


async def test_chunked_oversized_body_and_unknown_route(
    local: tuple[httpx.AsyncClient, Clock],
) -> None:
    client, _ = local

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(100):
            yield b" " * 1024

    did = "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa"
    response = await client.post(f"/{did}", content=chunks())
    assert response.status_code == 413 and "larger than" in response.json()["message"]
    response = await client.get(f"/{did}/nothing/here")
    assert response.status_code == 404 and response.json() == {"message": "Not Found"}
    response = await post_op(client, "did:web:example.com", Account().genesis())
    assert response.status_code == 400 and "not a did:plc" in response.json()["message"]


async def test_huge_declared_length_is_413(local: tuple[httpx.AsyncClient, Clock]) -> None:
    client, _ = local
    did = "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa"
    response = await client.post(f"/{did}", content=b"{}", headers={"content-length": "9" * 5000})
    assert response.status_code == 413 and "larger than" in response.json()["message"]


async def test_clock_stepping_back_keeps_log_order(local: tuple[httpx.AsyncClient, Clock]) -> None:
    client, clock = local
    account = Account()
    did, genesis = await create_did(client, account)
    clock.now -= timedelta(hours=1)
    update = sign_operation(update_op(genesis, op_cid(genesis), handle="b.test"), account.rotation)
    assert (await post_op(client, did, update)).status_code == 200
    audit = (await client.get(f"/{did}/log/audit")).json()
    assert [e["createdAt"] for e in audit] == [
        "2025-06-01T12:00:00.000Z",
        "2025-06-01T12:00:00.001Z",
    ]


async def test_recovery_in_the_same_millisecond_is_timestamped_later(
    local: tuple[httpx.AsyncClient, Clock],
) -> None:
    """The reference refuses a recovery not strictly later than what it nullifies; with the
    clock standing still the directory gives each operation the next millisecond."""
    client, _ = local
    account = Account()
    did, genesis = await create_did(client, account)
    hijack = sign_operation(update_op(genesis, op_cid(genesis), handle="m.test"), account.rotation)
    assert (await post_op(client, did, hijack)).status_code == 200
    recover = sign_operation(update_op(genesis, op_cid(genesis)), account.recovery)
    assert (await post_op(client, did, recover)).status_code == 200
    audit = (await client.get(f"/{did}/log/audit")).json()
    assert [(e["createdAt"], e["nullified"]) for e in audit] == [
        ("2025-06-01T12:00:00.000Z", False),
        ("2025-06-01T12:00:00.001Z", True),
        ("2025-06-01T12:00:00.002Z", False),
    ]
    validate_log(did, [LogEntry.from_json(e) for e in audit])


@pytest.mark.integration
@pytest.mark.parametrize("server", SERVERS)
async def test_served_by_each_server(tmp_path: Path, server: str) -> None:
    with running_service("plc", tmp_path / "plc", env={SERVER_ENV: server}) as url:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            did, _ = await create_did(client, Account())
            doc = await client.get(f"/{did}")
    assert doc.status_code == 200 and doc.json()["id"] == did
    assert any(name.startswith(server) for name in doc.headers.get_list("server"))

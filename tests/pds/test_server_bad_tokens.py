"""Malformed bearer tokens on the PDS's authenticated routes: always a 4xx XRPC error, never a
500 (issue 14: a payload of 2,000 `[` used to escape the decoder as RecursionError)."""

from __future__ import annotations

import base64
import json

import pytest

from tests.pds.conftest import PASSWORD, Pds

pytestmark = pytest.mark.integration


def seg(raw: bytes | str) -> str:
    data = raw.encode() if isinstance(raw, str) else raw
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


HEADER = seg(json.dumps({"typ": "at+jwt", "alg": "HS256"}))
SIG = seg(bytes(32))


def with_payload(payload: bytes | str) -> str:
    return ".".join((HEADER, seg(payload), SIG))


HOSTILE = {
    "deep_array": with_payload("[" * 2000),
    "deep_object": with_payload('{"a":' * 1500),
    "deep_header": ".".join((seg("[" * 5000), seg("{}"), SIG)),
    "bad_base64": "!!!.@@@.###",
    "padded": ".".join((HEADER + "=", seg("{}"), SIG)),
    "not_json": with_payload("not json"),
    "not_utf8": with_payload(b"\xff\xfe{}"),
    "array_payload": with_payload("[]"),
    "number_payload": with_payload("1"),
    "lone_surrogate": with_payload('{"sub":"\\ud800"}'),
    "huge_integer": with_payload('{"exp":' + "9" * 2500 + "}"),
    "nan": with_payload('{"exp":NaN}'),
    "two_parts": ".".join((HEADER, seg("{}"))),
    "huge": "a" * 100_000,
    "dots": "..",
}


async def assert_clean(pds: Pds, nsid: str, body: object, token: str) -> None:
    response = await pds.call(nsid, body, token=token)
    assert response.status_code in (400, 401), (nsid, response.status_code, response.text)
    error = response.json()["error"]
    assert error in ("InvalidToken", "BadJwt", "BadJwtType", "AuthenticationRequired"), error


@pytest.mark.parametrize("name", sorted(HOSTILE))
async def test_malformed_bearer_tokens_are_refused_cleanly(pds: Pds, name: str) -> None:
    token = HOSTILE[name]
    alice = await pds.create_account("alice.test")
    routes: list[tuple[str, object]] = [
        ("com.atproto.server.getSession", None),
        ("com.atproto.server.refreshSession", {}),
        ("app.bsky.actor.getPreferences", None),
        ("app.bsky.actor.getProfile", None),  # proxied: auth is optional there
        ("com.atproto.repo.createRecord", {"repo": alice["did"], "collection": "a.b.c"}),
        (
            "com.atproto.server.createAccount",  # a migration: the token is a service JWT
            {"did": alice["did"], "handle": "x.test", "password": PASSWORD},
        ),
    ]
    for nsid, body in routes:
        if nsid == "com.atproto.server.refreshSession":
            response = await pds.call(nsid, method="POST", token=token)
            assert response.status_code in (400, 401), response.text
            continue
        await assert_clean(pds, nsid, body, token)
    good = await pds.call("com.atproto.server.getSession", token=alice["accessJwt"])
    assert good.status_code == 200

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from atcore import cbor
from atcore.cid import cid_for_cbor, cid_for_raw
from atcore.commit import Commit, commit_cid, create_commit, decode_commit, verify_commit
from atcore.errors import InvalidCommit
from atcore.keys import PrivateKey, generate_k256, generate_p256
from atcore.syntax.did import parse_did
from atcore.syntax.tid import TidClock, parse_tid

DID = parse_did("did:plc:abcdefghijklmnopqrstuvwx")
DATA = cid_for_cbor(cbor.encode({"e": [], "l": None}))
REV = parse_tid("3kznmn7xqxl22")

KEYS: list[Callable[[], PrivateKey]] = [generate_k256, generate_p256]


@pytest.mark.parametrize("make_key", KEYS, ids=["k256", "p256"])
def test_sign_verify_round_trip(make_key: Callable[[], PrivateKey]) -> None:
    key = make_key()
    commit, block, cid = create_commit(DID, DATA, REV, key)
    assert verify_commit(commit, key.public_key())
    assert not verify_commit(commit, make_key().public_key())
    assert cid == cid_for_cbor(block) == commit_cid(commit)
    assert decode_commit(block) == commit
    assert commit.encode() == block
    assert len(commit.sig) == 64


def test_wire_shape_and_signed_bytes() -> None:
    key = generate_k256()
    commit, block, _ = create_commit(DID, DATA, REV, key)
    value = cbor.decode(block)
    assert value == {
        "did": DID,
        "version": 3,
        "data": DATA,
        "rev": REV,
        "prev": None,
        "sig": commit.sig,
    }
    unsigned = {k: v for k, v in value.items() if k != "sig"}
    assert commit.unsigned_bytes() == cbor.encode(unsigned)
    assert key.public_key().verify(cbor.encode(unsigned), commit.sig)


@pytest.mark.parametrize(
    "change",
    [
        {"did": parse_did("did:plc:abcdefghijklmnopqrstuvwy")},
        {"data": cid_for_cbor(b"\xa0")},
        {"rev": parse_tid("3kznmn7xqxl23")},
        {"prev": cid_for_cbor(b"\xa0")},
    ],
    ids=lambda c: next(iter(c)),
)
@pytest.mark.parametrize("make_key", KEYS, ids=["k256", "p256"])
def test_tampered_field_fails(make_key: Callable[[], PrivateKey], change: dict[str, Any]) -> None:
    key = make_key()
    commit, _, _ = create_commit(DID, DATA, REV, key)
    tampered = dataclasses.replace(commit, **change)
    assert not verify_commit(tampered, key.public_key())
    assert decode_commit(tampered.encode()) == tampered


def test_tampered_signature_fails() -> None:
    key = generate_k256()
    commit, _, _ = create_commit(DID, DATA, REV, key)
    sig = bytearray(commit.sig)
    sig[10] ^= 1
    assert not verify_commit(dataclasses.replace(commit, sig=bytes(sig)), key.public_key())
    assert not verify_commit(dataclasses.replace(commit, sig=b""), key.public_key())


def test_prev_link_round_trips() -> None:
    commit = Commit(did=DID, data=DATA, rev=REV, sig=b"s" * 64, prev=cid_for_cbor(b"\xa0"))
    assert decode_commit(commit.encode()) == commit


def _valid() -> dict[str, Any]:
    return {"did": DID, "version": 3, "data": DATA, "rev": REV, "prev": None, "sig": b"s" * 64}


@pytest.mark.parametrize(
    "mutate,reason",
    [
        (lambda v: v.pop("prev"), "missing \\['prev'\\]"),
        (lambda v: v.pop("sig"), "missing \\['sig'\\]"),
        (lambda v: v.update(extra=1), "unexpected \\['extra'\\]"),
        (lambda v: v.update(version=2), "version 2"),
        (lambda v: v.update(version=True), "version"),
        (lambda v: v.update(did="not-a-did"), "DID"),
        (lambda v: v.update(did=5), "strings"),
        (lambda v: v.update(rev="2024-01-01"), "TID"),
        (lambda v: v.update(data=cid_for_raw(b"x")), "data"),
        (lambda v: v.update(data="bafy"), "data"),
        (lambda v: v.update(prev=cid_for_raw(b"x")), "prev"),
        (lambda v: v.update(sig="abc"), "sig"),
    ],
)
def test_strict_decode(mutate: Callable[[dict[str, Any]], object], reason: str) -> None:
    value = _valid()
    mutate(value)
    with pytest.raises(InvalidCommit, match=reason):
        decode_commit(cbor.encode(value))


@pytest.mark.parametrize("block", [b"", b"\x80", cbor.encode([1]), b"\xa1\x61"])
def test_decode_rejects_non_commits(block: bytes) -> None:
    with pytest.raises(InvalidCommit):
        decode_commit(block)


def test_revs_increase_through_tid_clock_even_when_clock_steps_back() -> None:
    readings = iter([5_000_000, 4_000_000, 4_000_000, 6_000_000, 1_000_000])
    clock = TidClock(now=lambda: next(readings), clock_id=7)
    key = generate_k256()
    revs = [create_commit(DID, DATA, clock.next(), key)[0].rev for _ in range(5)]
    assert revs == sorted(revs) and len(set(revs)) == 5
    for rev in revs:
        assert decode_commit(create_commit(DID, DATA, rev, key)[1]).rev == rev

"""did:plc operations and logs against the official PLC interop vectors (plc-did-method-spec)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from atcore import cbor
from atcore.errors import InvalidPlcOperation, InvalidSyntax
from atcore.identity.plc import (
    MAX_OP_BYTES,
    Op,
    check_operation,
    decode_sig,
    did_for_genesis,
    genesis_op,
    op_cid,
    sign_operation,
    tombstone_op,
    unsigned_bytes,
    update_op,
    verify_operation_sig,
)
from atcore.identity.plc_data import did_document, operation_data
from atcore.identity.plc_log import (
    LogEntry,
    check_next_op,
    parse_timestamp,
    validate_log,
)
from atcore.keys import PrivateKey, generate_k256, generate_p256
from atcore.syntax.datetime import format_datetime
from tests.vectors import PLC_INTEROP

AUDIT = PLC_INTEROP / "audit_log"
VALID = sorted((AUDIT / "valid").glob("*.json"))
INVALID = sorted((AUDIT / "invalid").glob("*.json"))
# Why each invalid log must be rejected: a fragment of the reason we give.
INVALID_REASONS = {
    "log_invalid_nullification_reused_key": "listed before",
    "log_invalid_nullification_too_slow": "recovery window passed",
    "log_invalid_sig_b64_newline": "unpadded base64url",
    "log_invalid_sig_b64_padding_bits": "non-zero base64url padding bits",
    "log_invalid_sig_b64_padding_chars": "unpadded base64url",
    "log_invalid_sig_der": "invalid signature",
    "log_invalid_sig_k256_high_s": "invalid signature",
    "log_invalid_sig_p256_high_s": "invalid signature",
    "log_invalid_update_nullified": "not in the DID's current \\(non-nullified\\) log",
    "log_invalid_update_tombstoned": "is a tombstone",
}
T0 = datetime(2025, 1, 1, tzinfo=UTC)


def _load(path: Path) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = json.loads(path.read_text())
    return entries


def test_every_invalid_vector_has_a_reason() -> None:
    assert sorted(INVALID_REASONS) == [p.stem for p in INVALID]
    assert len(VALID) == 10


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.stem)
def test_valid_log_replays(path: Path) -> None:
    raw = _load(path)
    did = raw[0]["did"]
    state = validate_log(did, [LogEntry.from_json(e) for e in raw])
    assert did_for_genesis(raw[0]["operation"]) == did
    assert all(op_cid(e["operation"]) == e["cid"] for e in raw)
    assert state.nullified == {e["cid"] for e in raw if e["nullified"]}
    assert [e.cid for e in state.chain] == [e["cid"] for e in raw if not e["nullified"]]
    last = [e for e in raw if not e["nullified"]][-1]["operation"]
    assert state.tombstoned == (last["type"] == "plc_tombstone")
    if not state.tombstoned:
        assert state.data()["alsoKnownAs"] == last["alsoKnownAs"]
        assert state.data()["rotationKeys"] == last["rotationKeys"]


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_log_rejected(path: Path) -> None:
    raw = _load(path)
    with pytest.raises(InvalidPlcOperation, match=INVALID_REASONS[path.stem]):
        validate_log(raw[0]["did"], [LogEntry.from_json(e) for e in raw])


def test_false_nullified_claim_rejected() -> None:
    raw = _load(AUDIT / "valid" / "log_nullification.json")
    raw[1]["nullified"] = False
    with pytest.raises(InvalidPlcOperation, match="claims nullified=False"):
        validate_log(raw[0]["did"], [LogEntry.from_json(e) for e in raw])


def test_wrong_cid_claim_rejected() -> None:
    raw = _load(AUDIT / "valid" / "log_bskyapp.json")
    raw[1]["cid"] = raw[0]["cid"]
    with pytest.raises(InvalidPlcOperation, match="claims CID"):
        validate_log(raw[0]["did"], [LogEntry.from_json(e) for e in raw])


def test_bskyapp_did_document() -> None:
    raw = _load(AUDIT / "valid" / "log_bskyapp.json")
    did = "did:plc:z72i7hdynmk6r22z27h6tvur"
    state = validate_log(did, [LogEntry.from_json(e) for e in raw])
    assert did_document(did, state.data()) == {
        "@context": [
            "https://www.w3.org/ns/did/v1",
            "https://w3id.org/security/multikey/v1",
            "https://w3id.org/security/suites/secp256k1-2019/v1",
        ],
        "id": did,
        "alsoKnownAs": ["at://bsky.app"],
        "verificationMethod": [
            {
                "id": did + "#atproto",
                "type": "Multikey",
                "controller": did,
                "publicKeyMultibase": "zQ3shXjHeiBuRCKmM36cuYnm7YEMzhGnCmCyW92sRJ9pribSF",
            }
        ],
        "service": [
            {
                "id": "#atproto_pds",
                "type": "AtprotoPersonalDataServer",
                "serviceEndpoint": "https://bsky.social",
            }
        ],
    }


def test_spec_example_p256_document_context() -> None:
    did = "did:plc:7iza6de2dwap2sbkpav7c6c6"
    key = "zDnaeh9v2RmcMo13Du2d6pjUf5bZwtauYxj3n9dYjw4EZUAR7"
    data = {
        "verificationMethods": {"atproto": "did:key:" + key},
        "rotationKeys": ["did:key:zDnaedvvAsDE6H3BDdBejpx9ve2Tz95cymyCAKF66JbyMh1Lt"],
        "alsoKnownAs": ["at://alice.test"],
        "services": {},
    }
    doc = did_document(did, data)
    assert doc["@context"][-1] == "https://w3id.org/security/suites/ecdsa-2019/v1"
    assert doc["verificationMethod"][0]["publicKeyMultibase"] == key
    assert doc["service"] == []


def test_legacy_create_is_normalised() -> None:
    genesis = _load(AUDIT / "valid" / "log_legacy_dholms.json")[0]["operation"]
    assert operation_data(genesis) == {
        "rotationKeys": [genesis["recoveryKey"], genesis["signingKey"]],
        "verificationMethods": {"atproto": genesis["signingKey"]},
        "alsoKnownAs": ["at://dan.bsky.social"],
        "services": {
            "atproto_pds": {"type": "AtprotoPersonalDataServer", "endpoint": "https://bsky.social"}
        },
    }


# Operations built and signed here, with both curves.


def _genesis(signer: PrivateKey, *rotation: PrivateKey) -> Op:
    keys = [k.public_key().did_key() for k in rotation or (signer,)]
    op = genesis_op(
        signing_key=generate_k256().public_key().did_key(),
        rotation_keys=keys,
        handle="alice.test",
        pds="https://pds.example.com",
    )
    return sign_operation(op, signer)


@pytest.mark.parametrize("make_key", [generate_k256, generate_p256])
def test_sign_and_verify_round_trip(make_key: Callable[[], PrivateKey]) -> None:
    key, other = make_key(), make_key()
    op = _genesis(key, other, key)
    signer = key.public_key().did_key()
    assert verify_operation_sig(op, [other.public_key().did_key(), signer]) == signer
    assert key.public_key().verify(unsigned_bytes(op), decode_sig(op["sig"]))
    did = did_for_genesis(op)
    assert len(did) == 32 and did.startswith("did:plc:")
    with pytest.raises(InvalidPlcOperation, match="invalid signature"):
        verify_operation_sig(op, [other.public_key().did_key()])
    with pytest.raises(InvalidPlcOperation, match="invalid signature"):
        verify_operation_sig({**op, "alsoKnownAs": ["at://mallory.test"]}, [signer])


def test_did_changes_with_signature() -> None:
    key = generate_k256()
    op = _genesis(key)
    assert did_for_genesis(op) != did_for_genesis(sign_operation(op, generate_k256()))
    assert did_for_genesis(op) == did_for_genesis(json.loads(json.dumps(op)))


def _entry(did: str, op: Op, at: datetime) -> LogEntry:
    return LogEntry(did, op, op_cid(op), False, at)


def test_update_tombstone_and_recovery_rules() -> None:
    high, low = generate_k256(), generate_p256()
    genesis = _genesis(low, high, low)
    did = did_for_genesis(genesis)
    chain = [_entry(did, genesis, T0)]
    assert check_next_op(did, [], genesis, T0).nullifies == ()
    update = sign_operation(update_op(genesis, op_cid(genesis), handle="bob.test"), low)
    assert check_next_op(did, chain, update, T0).nullifies == ()
    chain.append(_entry(did, update, T0 + timedelta(hours=1)))
    recovery = sign_operation(update_op(genesis, op_cid(genesis), pds="https://new.test"), high)
    at_limit = T0 + timedelta(hours=73)
    assert check_next_op(did, chain, recovery, at_limit).nullifies == (op_cid(update),)
    with pytest.raises(InvalidPlcOperation, match="recovery window passed"):
        check_next_op(did, chain, recovery, at_limit + timedelta(milliseconds=1))
    weak = sign_operation(update_op(genesis, op_cid(genesis), pds="https://new.test"), low)
    with pytest.raises(InvalidPlcOperation, match="listed before"):
        check_next_op(did, chain, weak, T0 + timedelta(hours=2))
    with pytest.raises(InvalidPlcOperation, match="already in the log"):
        check_next_op(did, chain, update, T0 + timedelta(hours=2))
    tomb = sign_operation(tombstone_op(op_cid(update)), low)
    chain.append(_entry(did, tomb, T0 + timedelta(hours=2)))
    after = sign_operation(update_op(genesis, op_cid(tomb)), low)
    with pytest.raises(InvalidPlcOperation, match="is a tombstone"):
        check_next_op(did, chain, after, T0 + timedelta(hours=3))
    state = validate_log(did, chain)
    assert state.tombstoned and state.nullified == frozenset()


def test_recovery_must_be_later_than_what_it_nullifies() -> None:
    high, low = generate_k256(), generate_p256()
    genesis = _genesis(low, high, low)
    did = did_for_genesis(genesis)
    first = sign_operation(update_op(genesis, op_cid(genesis), handle="m.test"), low)
    second = sign_operation(update_op(first, op_cid(first), handle="n.test"), low)
    newest = T0 + timedelta(minutes=2)
    chain = [
        _entry(did, genesis, T0),
        _entry(did, first, T0 + timedelta(minutes=1)),
        _entry(did, second, newest),
    ]
    recovery = sign_operation(update_op(genesis, op_cid(genesis)), high)
    for at in (newest, newest - timedelta(seconds=30)):
        with pytest.raises(InvalidPlcOperation, match="not after"):
            check_next_op(did, chain, recovery, at)
    later = newest + timedelta(milliseconds=1)
    assert check_next_op(did, chain, recovery, later).nullifies == (op_cid(first), op_cid(second))
    # A plain update keeps the reference's leniency: only recoveries must move forward.
    third = sign_operation(update_op(second, op_cid(second)), low)
    assert check_next_op(did, chain, third, newest).nullifies == ()


def test_genesis_rules() -> None:
    key = generate_k256()
    genesis = _genesis(key)
    with pytest.raises(InvalidPlcOperation, match="hashes to"):
        check_next_op("did:plc:aaaaaaaaaaaaaaaaaaaaaaaa", [], genesis, T0)
    foreign = sign_operation(genesis, generate_k256())
    with pytest.raises(InvalidPlcOperation, match="invalid signature"):
        check_next_op(did_for_genesis(foreign), [], foreign, T0)
    update = sign_operation(update_op(genesis, op_cid(genesis)), key)
    with pytest.raises(InvalidPlcOperation, match="DID not registered"):
        check_next_op(did_for_genesis(genesis), [], update, T0)
    did = did_for_genesis(genesis)
    with pytest.raises(InvalidPlcOperation, match="needs a 'prev'"):
        check_next_op(did, [_entry(did, genesis, T0)], _genesis(key), T0)


def test_update_op_keeps_other_entries() -> None:
    prev: Op = {
        "type": "plc_operation",
        "rotationKeys": ["did:key:zQ3shhCGUqDKjStzuDxPkTxN6ujddP4RkEKJJouJGRRkaLGbg"],
        "verificationMethods": {"atproto": "did:key:zA", "other": "did:key:zB"},
        "alsoKnownAs": ["https://example.com", "at://old.test", "at://second.test"],
        "services": {"atproto_pds": {"type": "AtprotoPersonalDataServer", "endpoint": "x"}},
        "prev": None,
        "sig": "s",
    }
    cid = "bafyreigp6shzy6dlcxuowwoxz7u5nemdrkad2my5zwzpwilcnhih7bw6zm"
    op = update_op(prev, cid, handle="new.test", signing_key="did:key:zC")
    assert op["alsoKnownAs"] == ["https://example.com", "at://new.test", "at://second.test"]
    assert op["verificationMethods"] == {"atproto": "did:key:zC", "other": "did:key:zB"}
    assert op["services"] == prev["services"] and op["prev"] == cid and "sig" not in op
    with pytest.raises(InvalidPlcOperation, match="tombstoned"):
        update_op(tombstone_op(cid), cid)


def test_timestamps_round_trip() -> None:
    text = "2023-04-12T17:26:46.468Z"
    assert format_datetime(parse_timestamp(text)) == text
    assert format_datetime(parse_timestamp("2023-04-12T19:26:46.468999+02:00")) == text
    for edge in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"):
        with pytest.raises(InvalidSyntax, match="out of range"):
            parse_timestamp(edge)


_K = "did:key:zQ3shhCGUqDKjStzuDxPkTxN6ujddP4RkEKJJouJGRRkaLGbg"
_CID = "bafyreigp6shzy6dlcxuowwoxz7u5nemdrkad2my5zwzpwilcnhih7bw6zm"
_BAD_SHAPES: list[tuple[str, Callable[[Op], object], str]] = [
    ("not-object", lambda op: [op], "JSON object"),
    ("unknown-type", lambda op: {**op, "type": "plc_bogus"}, "unknown operation type"),
    ("extra-field", lambda op: {**op, "extra": 1}, "unexpected \\['extra'\\]"),
    ("missing-sig", lambda op: {k: v for k, v in op.items() if k != "sig"}, "missing \\['sig'\\]"),
    ("six-rotation-keys", lambda op: {**op, "rotationKeys": [_K] * 6}, "too many rotation"),
    ("bad-rotation-key", lambda op: {**op, "rotationKeys": ["did:key:zX"]}, "unsupported"),
    (
        "eleven-methods",
        lambda op: {**op, "verificationMethods": {str(i): _K for i in range(11)}},
        "too many verification",
    ),
    ("method-not-did-key", lambda op: {**op, "verificationMethods": {"a": "x"}}, "not a did:key"),
    ("aka-not-strings", lambda op: {**op, "alsoKnownAs": [1]}, "array of strings"),
    ("service-shape", lambda op: {**op, "services": {"s": {"type": "t"}}}, "service 's'"),
    ("prev-not-cid", lambda op: {**op, "prev": "bafy"}, "not a CID"),
    (
        "tombstone-no-prev",
        lambda op: {"type": "plc_tombstone", "prev": None, "sig": op["sig"]},
        "'prev'",
    ),
    ("short-sig", lambda op: {**op, "sig": op["sig"][:-2]}, "unpadded base64url"),
    # A lone surrogate as a key next to another key made the CBOR encoder raise SystemError.
    (
        "surrogate-service-id",
        lambda op: {**op, "services": {**op["services"], "\ud800": {"type": "t", "endpoint": "e"}}},
        "lone UTF-16 surrogate",
    ),
    (
        "surrogate-method-id",
        lambda op: {**op, "verificationMethods": {"\udfff": _K, "atproto": _K}},
        "lone UTF-16 surrogate",
    ),
    ("surrogate-aka", lambda op: {**op, "alsoKnownAs": ["at://a\ud800"]}, "lone UTF-16"),
    (
        "oversized",
        lambda op: {**op, "alsoKnownAs": ["at://" + "a" * MAX_OP_BYTES]},
        f"over the {MAX_OP_BYTES} limit",
    ),
]


@pytest.mark.parametrize(
    "mutate,reason", [c[1:] for c in _BAD_SHAPES], ids=[c[0] for c in _BAD_SHAPES]
)
def test_check_operation_rejects(mutate: Callable[[Op], object], reason: str) -> None:
    good = _genesis(generate_k256())
    assert check_operation(good) is good
    with pytest.raises(InvalidPlcOperation, match=reason):
        check_operation(mutate(good))


def test_max_size_is_dag_cbor_size() -> None:
    good = _genesis(generate_k256())
    room = MAX_OP_BYTES - len(cbor.encode(good))
    # Growing a string past 23/255 bytes costs extra header bytes; aim exactly at the limit.
    alias = good["alsoKnownAs"][0]
    fits = {**good, "alsoKnownAs": [alias + "a" * (room - 2)]}
    assert len(cbor.encode(fits)) == MAX_OP_BYTES
    check_operation(fits)
    with pytest.raises(InvalidPlcOperation, match="limit"):
        check_operation({**good, "alsoKnownAs": [alias + "a" * (room - 1)]})
    with pytest.raises(InvalidPlcOperation, match="over the 1000 limit"):
        check_operation(fits, max_bytes=1000)

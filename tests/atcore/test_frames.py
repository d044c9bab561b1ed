from __future__ import annotations

import dataclasses
import json
from typing import Any

import cbrrr
import pytest

from atcore import cbor
from atcore.car import write_car
from atcore.cid import cid_for_cbor, cid_for_raw
from atcore.errors import DecodeError
from atcore.frames import (
    AccountEvent,
    CommitEvent,
    ErrorFrame,
    Event,
    IdentityEvent,
    InfoEvent,
    RepoOp,
    SyncEvent,
    UnknownEvent,
    decode_frame,
    encode_error,
    encode_frame,
)
from tests.vectors import LEXICONS

LEXICON = json.loads((LEXICONS / "com/atproto/sync/subscribeRepos.json").read_text())["defs"]

DID = "did:plc:abcdefghijklmnopqrstuvwx"
TIME = "2024-05-01T12:00:00.000Z"
COMMIT = cid_for_cbor(b"\xa0")
RECORD = cid_for_cbor(cbor.encode({"text": "hi"}))
CAR = write_car(COMMIT, [(COMMIT, b"\xa0")])

FULL: dict[str, Event] = {
    "commit": CommitEvent(
        seq=7,
        repo=DID,
        commit=COMMIT,
        rev="3kznmn7xqxl22",
        since="3kznmn7xqxl21",
        blocks=CAR,
        ops=[
            RepoOp("create", "app.bsky.feed.post/3kznmn7xqxl22", RECORD),
            RepoOp("update", "app.bsky.actor.profile/self", RECORD, prev=COMMIT),
            RepoOp("delete", "app.bsky.feed.like/3kznmn7xqxl20", None, prev=RECORD),
        ],
        time=TIME,
        blobs=[cid_for_raw(b"blob")],
        prev_data=COMMIT,
        rebase=True,
        too_big=True,
    ),
    "sync": SyncEvent(seq=8, did=DID, blocks=CAR, rev="3kznmn7xqxl22", time=TIME),
    "identity": IdentityEvent(seq=9, did=DID, time=TIME, handle="alice.test"),
    "account": AccountEvent(seq=10, did=DID, time=TIME, active=False, status="takendown"),
    "info": InfoEvent(name="OutdatedCursor", message="cursor too old"),
}
MINIMAL: dict[str, Event] = {
    "commit": CommitEvent(
        seq=1,
        repo=DID,
        commit=COMMIT,
        rev="3kznmn7xqxl22",
        since=None,
        blocks=CAR,
        ops=[],
        time=TIME,
    ),
    "sync": FULL["sync"],
    "identity": IdentityEvent(seq=9, did=DID, time=TIME),
    "account": AccountEvent(seq=10, did=DID, time=TIME, active=True),
    "info": InfoEvent(name="OutdatedCursor"),
}


def _split(frame: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    header, offset = cbor.decode_prefix(frame)
    return header, cbor.decode(frame[offset:])


def _frame(header: object, body: object) -> bytes:
    return cbor.encode(header) + cbor.encode(body)


def _normal(event: Event) -> Event:
    """The decoded form: sequences come back as tuples."""
    return decode_frame(encode_frame(event))  # type: ignore[return-value]


@pytest.mark.parametrize("kind", FULL)
@pytest.mark.parametrize("events", [FULL, MINIMAL], ids=["full", "minimal"])
def test_round_trip(kind: str, events: dict[str, Event]) -> None:
    event = events[kind]
    decoded = decode_frame(encode_frame(event))
    assert type(decoded) is type(event)
    for name, value in vars(event).items():
        got = getattr(decoded, name)
        if isinstance(value, list | tuple):
            assert isinstance(got, tuple) and list(got) == list(value)
        else:
            assert got == value
    assert encode_frame(_normal(event)) == encode_frame(event)


@pytest.mark.parametrize("kind", FULL)
@pytest.mark.parametrize("events", [FULL, MINIMAL], ids=["full", "minimal"])
def test_unchecked_encoding_of_a_decoded_event_is_identical(
    kind: str, events: dict[str, Event]
) -> None:
    """The relay re-encodes events it just decoded with check=False: same bytes as checked,
    with a new seq too."""
    decoded = _normal(events[kind])
    assert encode_frame(decoded, check=False) == encode_frame(decoded)
    if hasattr(decoded, "seq"):
        renumbered = dataclasses.replace(decoded, seq=10**12)
        assert encode_frame(renumbered, check=False) == encode_frame(renumbered)
        assert encode_frame(decoded, check=False, seq=10**12) == encode_frame(renumbered)
        assert encode_frame(decoded, seq=10**12) == encode_frame(renumbered)
    else:
        with pytest.raises(ValueError, match="no seq"):
            encode_frame(decoded, seq=1)
    error = decode_frame(encode_error("ConsumerTooSlow", "bye"))
    assert isinstance(error, ErrorFrame)
    assert encode_frame(error, check=False) == encode_error("ConsumerTooSlow", "bye")


@pytest.mark.parametrize("kind", FULL)
def test_wire_keys_match_lexicon(kind: str) -> None:
    schema = LEXICON[kind]
    header, body = _split(encode_frame(FULL[kind]))
    assert header == {"op": 1, "t": f"#{kind}"}
    assert set(body) == set(schema["properties"])
    _, body = _split(encode_frame(MINIMAL[kind]))
    assert set(body) == set(schema["required"])
    for name in schema.get("nullable", []):
        assert body[name] is None


def test_repo_op_wire_keys_match_lexicon() -> None:
    schema = LEXICON["repoOp"]
    _, body = _split(encode_frame(FULL["commit"]))
    create, update, delete = body["ops"]
    assert set(create) == set(schema["required"])
    assert set(update) == set(delete) == set(schema["properties"])
    assert delete["cid"] is None and update["prev"] == COMMIT


def test_error_frames() -> None:
    frame = encode_error("FutureCursor", "too new")
    assert _split(frame) == ({"op": -1}, {"error": "FutureCursor", "message": "too new"})
    assert decode_frame(frame) == ErrorFrame("FutureCursor", "too new")
    assert _split(encode_error("ConsumerTooSlow"))[1] == {"error": "ConsumerTooSlow"}
    assert decode_frame(encode_frame(ErrorFrame("X"))) == ErrorFrame("X")
    with pytest.raises(DecodeError, match="error"):
        decode_frame(_frame({"op": -1}, {"message": "no error name"}))


def test_unknown_types_are_skippable() -> None:
    body = {"seq": 1, "whatever": [1, 2]}
    assert decode_frame(_frame({"op": 1, "t": "#labels"}, body)) == UnknownEvent(1, "#labels", body)
    assert decode_frame(_frame({"op": 2}, body)) == UnknownEvent(2, None, body)


def test_unknown_fields_are_ignored() -> None:
    _, body = _split(encode_frame(FULL["identity"]))
    body["futureField"] = {"x": 1}
    assert decode_frame(_frame({"op": 1, "t": "#identity", "extra": 1}, body)) == FULL["identity"]


def _commit_body() -> dict[str, Any]:
    return _split(encode_frame(FULL["commit"]))[1]


@pytest.mark.parametrize(
    "mutate,reason",
    [
        (lambda b: b.pop("tooBig"), "missing required field 'tooBig'"),
        (lambda b: b.pop("since"), "missing required field 'since'"),
        (lambda b: b.pop("blobs"), "missing required field 'blobs'"),
        (lambda b: b.update(seq="7"), "'seq' must be int"),
        (lambda b: b.update(seq=True), "'seq' must be int"),
        (lambda b: b.update(rebase=0), "'rebase' must be bool"),
        (lambda b: b.update(commit=None), "'commit' must be cid"),
        (lambda b: b.update(prevData=None), "'prevData' must be cid"),
        (lambda b: b.update(blocks="car"), "'blocks' must be bytes"),
        (lambda b: b.update(blocks=b"x" * 2_000_001), "'blocks' is longer than 2000000"),
        (lambda b: b.update(blobs=["bafy"]), "list of CID links"),
        (lambda b: b.update(ops=[{"action": "create", "path": "a/b"}] * 201), "longer than 200"),
        (lambda b: b.update(ops=[1]), "list of maps"),
        (lambda b: b.update(ops=[{"action": "create", "path": "a/b"}]), "op is missing.*'cid'"),
        (lambda b: b.update(ops=[{"action": "x", "path": "a/b", "cid": 1}]), "'cid' must be"),
        (lambda b: b["ops"][0].update(prev=None), "'prev' must be cid"),
    ],
)
@pytest.mark.parametrize("trusted", [False, True])
def test_strict_commit_fields(mutate: Any, reason: str, trusted: bool) -> None:
    body = _commit_body()
    mutate(body)
    with pytest.raises(DecodeError, match=reason):
        frame = _frame({"op": 1, "t": "#commit"}, body)
        decode_frame(frame, max_size=10_000_000, trusted=trusted)


@pytest.mark.parametrize("kind", ["commit", "sync", "identity", "account", "info"])
def test_trusted_decoding_gives_the_same_events(kind: str) -> None:
    frame = encode_frame(FULL[kind])
    assert decode_frame(frame, trusted=True) == decode_frame(frame)


def test_trusted_decoding_skips_only_the_data_model_checks() -> None:
    """A float where the data model allows none (an ignored field here) is refused unless the
    source is trusted; a field of the wrong type is refused either way."""
    header, body = _split(encode_frame(FULL["commit"]))
    body["futureField"] = 1.5
    frame = cbor.encode(header) + cbrrr.encode_dag_cbor(body)
    with pytest.raises(DecodeError, match="float"):
        decode_frame(frame)
    assert decode_frame(frame, trusted=True) == decode_frame(encode_frame(FULL["commit"]))
    body["seq"] = 1.5
    with pytest.raises(DecodeError, match="'seq' must be int"):
        decode_frame(cbor.encode(header) + cbrrr.encode_dag_cbor(body), trusted=True)


def test_encoder_refuses_what_decoder_would_reject() -> None:
    with pytest.raises(DecodeError, match="longer than 10000"):
        encode_frame(SyncEvent(seq=1, did=DID, blocks=b"x" * 10_001, rev="r", time=TIME))
    with pytest.raises(DecodeError, match="'active' must be bool"):
        encode_frame(AccountEvent(seq=1, did=DID, time=TIME, active=1))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "frame,reason",
    [
        (b"", "DAG-CBOR"),
        (cbor.encode({"op": 1, "t": "#info"}), "DAG-CBOR"),
        (_frame({"op": 1, "t": "#info"}, {"name": "x"}) + b"\x00", "DAG-CBOR"),
        (_frame([1], {"name": "x"}), "header must be a map"),
        (_frame({"t": "#info"}, {"name": "x"}), "integer op"),
        (_frame({"op": "1", "t": "#info"}, {"name": "x"}), "integer op"),
        (_frame({"op": 1}, {"name": "x"}), "string t"),
        (_frame({"op": 1, "t": "#info"}, [1]), "body must be a map"),
        (b"\xa2\x62op\x01\x61t\x65#info\xa1\x64name\xfb\x00", "DAG-CBOR"),
    ],
)
@pytest.mark.parametrize("trusted", [False, True])
def test_garbage_frames(frame: bytes, reason: str, trusted: bool) -> None:
    with pytest.raises(DecodeError, match=reason):
        decode_frame(frame, trusted=trusted)


@pytest.mark.parametrize("trusted", [False, True])
def test_every_truncation_raises_decode_error(trusted: bool) -> None:
    frame = encode_frame(FULL["commit"])
    for cut in range(len(frame)):
        with pytest.raises(DecodeError):
            decode_frame(frame[:cut], trusted=trusted)


def test_frame_size_bound() -> None:
    frame = encode_frame(FULL["commit"])
    with pytest.raises(DecodeError, match="exceeds the limit"):
        decode_frame(frame, max_size=len(frame) - 1)
    assert decode_frame(frame, max_size=len(frame)) == _normal(FULL["commit"])

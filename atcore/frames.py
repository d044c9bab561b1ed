"""Firehose frames of com.atproto.sync.subscribeRepos (spec-event-stream.md, "Framing").

A frame is two concatenated DAG-CBOR values: a header `{op: 1, t: "#commit"}` (or `{op: -1}` for
an error) and a body map. One table per message type holds the lexicon's wire names, types,
required and nullable flags; encoding and decoding both check against it, so a frame we emit is
one we would accept. Unknown body fields are ignored (lexicons evolve by adding optional fields);
unknown `op` or `t` decode to `UnknownEvent` for the consumer to skip. Formats (did, tid,
datetime) are left to the consumer that acts on them: a bad value there is a bad event, not a
broken stream.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import cbrrr

from atcore import cbor
from atcore.cid import CID
from atcore.errors import DecodeError

__all__ = [
    "AccountEvent",
    "CommitEvent",
    "ErrorFrame",
    "Event",
    "IdentityEvent",
    "InfoEvent",
    "MAX_FRAME_SIZE",
    "RepoOp",
    "SyncEvent",
    "UnknownEvent",
    "WireCommit",
    "commit_from_wire",
    "commit_to_wire",
    "decode_frame",
    "split_frame",
    "encode_error",
    "encode_frame",
]

# The lexicon caps #commit blocks at 2,000,000 bytes and 200 ops; this leaves room for the rest.
MAX_FRAME_SIZE = 5 * 1024 * 1024

T = TypeVar("T")


@dataclass(frozen=True)
class RepoOp:
    action: str
    path: str
    cid: CID | None
    prev: CID | None = None


@dataclass(frozen=True)
class CommitEvent:
    seq: int
    repo: str
    commit: CID
    rev: str
    since: str | None
    blocks: bytes
    ops: Sequence[RepoOp]
    time: str
    blobs: Sequence[CID] = ()
    prev_data: CID | None = None
    rebase: bool = False
    too_big: bool = False


@dataclass(frozen=True)
class SyncEvent:
    seq: int
    did: str
    blocks: bytes
    rev: str
    time: str


@dataclass(frozen=True)
class IdentityEvent:
    seq: int
    did: str
    time: str
    handle: str | None = None


@dataclass(frozen=True)
class AccountEvent:
    seq: int
    did: str
    time: str
    active: bool
    status: str | None = None


@dataclass(frozen=True)
class InfoEvent:
    name: str
    message: str | None = None


@dataclass(frozen=True)
class ErrorFrame:
    error: str
    message: str | None = None


@dataclass(frozen=True)
class UnknownEvent:
    """A frame with an `op` or `t` this code does not know; consumers skip it."""

    op: int
    t: str | None
    body: dict[str, Any]


Event = CommitEvent | SyncEvent | IdentityEvent | AccountEvent | InfoEvent

# What a #commit's checks read (atcore.firehose_verify, relay.validate), as plain values with
# binary CIDs, for worker processes: pickling CID and dataclass objects costs ~4x more on both
# sides of the pipe. No seq, time or blobs.
WireOp = tuple[str, str, bytes | None, bytes | None]
WireCommit = tuple[str, bytes, str, str | None, bytes, tuple[WireOp, ...], bytes | None]


def _cid_bytes(cid: CID | None) -> bytes | None:
    return None if cid is None else cid.cid_bytes


def _cid_of(raw: bytes | None) -> CID | None:
    return None if raw is None else CID(raw)


def commit_to_wire(event: CommitEvent) -> WireCommit:
    """The fields of `event` that its checks read."""
    ops = tuple([(op.action, op.path, _cid_bytes(op.cid), _cid_bytes(op.prev)) for op in event.ops])
    return (
        event.repo,
        event.commit.cid_bytes,
        event.rev,
        event.since,
        event.blocks,
        ops,
        _cid_bytes(event.prev_data),
    )


def commit_from_wire(wire: WireCommit) -> CommitEvent:
    """A CommitEvent holding what commit_to_wire kept (seq 0, no time or blobs)."""
    repo, commit, rev, since, blocks, ops, prev_data = wire
    return CommitEvent(
        seq=0,
        repo=repo,
        commit=CID(commit),
        rev=rev,
        since=since,
        blocks=blocks,
        ops=tuple(RepoOp(a, path, _cid_of(cid), _cid_of(prev)) for a, path, cid, prev in ops),
        time="",
        prev_data=_cid_of(prev_data),
    )


_Kind = Literal["int", "bool", "str", "bytes", "cid", "cids", "ops"]


@dataclass(frozen=True)
class _Field:
    wire: str
    attr: str
    kind: _Kind
    required: bool = True
    nullable: bool = False
    max_len: int | None = None
    # A value of exactly this type is valid as it is (the scalar kinds without a length cap).
    plain: type[Any] | None = None


_PLAIN_TYPES: dict[str, type[Any]] = {
    "int": int,
    "bool": bool,
    "str": str,
    "bytes": bytes,
    "cid": CID,
}

_ABSENT = object()  # a field missing from a wire map


def _f(wire: str, kind: _Kind, attr: str = "", **flags: Any) -> _Field:
    plain = None if flags.get("max_len") is not None else _PLAIN_TYPES.get(kind)
    return _Field(wire, attr or wire, kind, plain=plain, **flags)


_REPO_OP: tuple[_Field, ...] = (
    _f("action", "str"),
    _f("path", "str"),
    _f("cid", "cid", nullable=True),
    _f("prev", "cid", required=False),
)
_ERROR: tuple[_Field, ...] = (_f("error", "str"), _f("message", "str", required=False))
_SCHEMAS: dict[str, tuple[type[Any], tuple[_Field, ...]]] = {
    "#commit": (
        CommitEvent,
        (
            _f("seq", "int"),
            _f("rebase", "bool"),
            _f("tooBig", "bool", "too_big"),
            _f("repo", "str"),
            _f("commit", "cid"),
            _f("rev", "str"),
            _f("since", "str", nullable=True),
            _f("blocks", "bytes", max_len=2_000_000),
            _f("ops", "ops", max_len=200),
            _f("blobs", "cids"),
            _f("prevData", "cid", "prev_data", required=False),
            _f("time", "str"),
        ),
    ),
    "#sync": (
        SyncEvent,
        (
            _f("seq", "int"),
            _f("did", "str"),
            _f("blocks", "bytes", max_len=10_000),
            _f("rev", "str"),
            _f("time", "str"),
        ),
    ),
    "#identity": (
        IdentityEvent,
        (
            _f("seq", "int"),
            _f("did", "str"),
            _f("time", "str"),
            _f("handle", "str", required=False),
        ),
    ),
    "#account": (
        AccountEvent,
        (
            _f("seq", "int"),
            _f("did", "str"),
            _f("time", "str"),
            _f("active", "bool"),
            _f("status", "str", required=False),
        ),
    ),
    "#info": (InfoEvent, (_f("name", "str"), _f("message", "str", required=False))),
}
_TYPE_OF = {cls: t for t, (cls, _) in _SCHEMAS.items()}
# Every frame of a type has the same header.
_HEADERS = {t: cbor.encode({"op": 1, "t": t}) for t in _SCHEMAS}
_HEADERS["error"] = cbor.encode({"op": -1})


def encode_frame(event: Event | ErrorFrame, *, check: bool = True, seq: int | None = None) -> bytes:
    """The binary websocket frame (header + body) for an event or an error.

    `seq`, for an event that has one, is the seq the frame carries instead of the event's (a
    relay re-sequences what it forwards). `check=False` skips checking the fields against
    their table and the values against the data model: only for an event whose fields were
    just checked (decode_frame produced it, or encode_frame checked it for another seq). Both
    paths give the same bytes.
    """
    if isinstance(event, ErrorFrame):
        t = "error"
        fields = _ERROR
    else:
        t = _TYPE_OF[type(event)]
        fields = _SCHEMAS[t][1]
    body = _to_wire(event, fields)
    if seq is not None:
        if "seq" not in body:
            raise ValueError(f"a {t} frame has no seq")
        body["seq"] = seq
    if not check:
        return _HEADERS[t] + cbrrr.encode_dag_cbor(body)
    _from_wire(body, fields, t)
    return _HEADERS[t] + cbor.encode(body)


def encode_error(error: str, message: str | None = None) -> bytes:
    """An error frame such as `FutureCursor` or `ConsumerTooSlow`."""
    return encode_frame(ErrorFrame(error, message))


def decode_frame(
    data: bytes, max_size: int = MAX_FRAME_SIZE, *, trusted: bool = False
) -> Event | ErrorFrame | UnknownEvent:
    """Decode one frame strictly; raise DecodeError for bad framing, CBOR or message fields.

    `trusted` skips checking the body's values against the atproto data model (floats, the
    64-bit range, CID kinds, depth: a walk of the whole body), for a consumer that trusts its
    source to send only what the source checked (a relay it trusts). The CBOR is still DAG-CBOR
    and every message field still has its type.
    """
    if len(data) > max_size:
        raise DecodeError(f"frame of {len(data)} bytes exceeds the limit of {max_size}")
    if trusted:
        header, body = split_frame(data)
    else:
        header, offset = cbor.decode_prefix(data)
        body = cbor.decode(data[offset:])
    if not isinstance(header, dict) or type(header.get("op")) is not int:
        raise DecodeError("frame header must be a map with an integer op")
    if not isinstance(body, dict):
        raise DecodeError("frame body must be a map")
    op, t = header["op"], header.get("t")
    if op == -1:
        return _built(ErrorFrame, _from_wire(body, _ERROR, "error"))
    if op == 1 and not isinstance(t, str):
        raise DecodeError("message frame header needs a string t")
    if op != 1 or t not in _SCHEMAS:
        return UnknownEvent(op, t if isinstance(t, str) else None, body)
    cls, fields = _SCHEMAS[t]
    event: Event = _built(cls, _from_wire(body, fields, t))
    return event


def split_frame(data: bytes) -> tuple[Any, Any]:
    """A frame's header and body as DAG-CBOR, without the data-model checks of decode_frame
    (atcore.cbor.decode_prefix_unchecked): for a source that checked them, or a glance at
    frames that will not be used."""
    header, offset = cbor.decode_prefix_unchecked(data)
    body, length = cbor.decode_prefix_unchecked(data[offset:])
    if offset + length != len(data):
        raise DecodeError("invalid DAG-CBOR: trailing bytes")
    return header, body


def _to_wire(obj: object, fields: tuple[_Field, ...]) -> dict[str, Any]:
    wire: dict[str, Any] = {}
    for field in fields:
        value = getattr(obj, field.attr)
        if value is None and not field.required:
            continue
        if field.kind == "ops":
            value = [_to_wire(op, _REPO_OP) for op in value]
        elif field.kind == "cids":
            value = list(value)
        wire[field.wire] = value
    return wire


def _from_wire(body: dict[str, Any], fields: tuple[_Field, ...], what: str) -> dict[str, Any]:
    """Check a wire map against its table; return every attribute of its class (None for an
    optional field that is absent)."""
    out: dict[str, Any] = {}
    for field in fields:
        value = body.get(field.wire, _ABSENT)
        if type(value) is field.plain:
            out[field.attr] = value
        elif value is _ABSENT:
            if field.required:
                raise DecodeError(f"{what} is missing required field {field.wire!r}")
            out[field.attr] = None
        elif value is None and field.nullable:
            out[field.attr] = None
        else:
            out[field.attr] = _convert(field, value, what)
    return out


def _built(cls: type[T], attrs: dict[str, Any]) -> T:
    """`cls(**attrs)` for a frozen dataclass given every one of its fields, without the
    generated __init__, which sets each through object.__setattr__ (~1 µs for a #commit,
    as much as checking its fields)."""
    obj = object.__new__(cls)
    obj.__dict__.update(attrs)
    return obj


_SCALAR_TYPES: dict[str, type[Any]] = {"str": str, "bytes": bytes, "cid": CID}


def _convert(field: _Field, value: Any, what: str) -> Any:
    kind = field.kind
    if kind == "int" or kind == "bool":
        ok = type(value) is (int if kind == "int" else bool)
    elif kind in _SCALAR_TYPES:
        ok = isinstance(value, _SCALAR_TYPES[kind])
    else:
        ok = isinstance(value, list)
    if not ok:
        raise DecodeError(f"{what} field {field.wire!r} must be {kind}, not {type(value).__name__}")
    if field.max_len is not None and len(value) > field.max_len:
        raise DecodeError(f"{what} field {field.wire!r} is longer than {field.max_len}")
    if kind == "cids":
        if not all(isinstance(item, CID) for item in value):
            raise DecodeError(f"{what} field {field.wire!r} must be a list of CID links")
        return tuple(value)
    if kind == "ops":
        if not all(isinstance(item, dict) for item in value):
            raise DecodeError(f"{what} field {field.wire!r} must be a list of maps")
        where = f"{what} op"
        return tuple([_built(RepoOp, _from_wire(item, _REPO_OP, where)) for item in value])
    return value

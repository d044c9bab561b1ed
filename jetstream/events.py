"""Jetstream v1 event JSON, byte for byte the official server's (blog-jetstream.md, "Events").

The official server is written in Go and marshals with `encoding/json`: object keys of a record
come out sorted (a decoded record is a Go map), except a blob, which is a struct in the order
`$type`, `ref`, `mimeType`, `size`; `<`, `>`, `&`, U+2028 and U+2029 are escaped as `\\u003c`
..., every other non-ASCII character is written as it is. Envelopes and the identity and
account bodies are structs whose field order (alphabetical for the latter two) is fixed here.

A record is written once, when its event is made, by the C encoder in one call (keys sorted,
links and bytes through its `default` hook); only a record that may hold a blob is first
walked in Python to put the blob's fields in Go's order.
"""

from __future__ import annotations

import json
from json.encoder import encode_basestring
from typing import Any, Final

from atcore import cbor
from atcore.cid import CID, cid_text
from atcore.datamodel import json_default

__all__ = [
    "Entry",
    "account_json",
    "commit_json",
    "go_json",
    "identity_json",
    "record_json",
    "sync_json",
]

_GO_ESCAPES: Final = (
    ("<", "\\u003c"),
    (">", "\\u003e"),
    ("&", "\\u0026"),
    ("\u2028", "\\u2028"),
    ("\u2029", "\\u2029"),
)
_BLOB_KEYS: Final = frozenset({"$type", "ref", "mimeType", "size"})
# Values that are the same in the JSON data model: no call to convert them.
_LEAVES: Final = frozenset({str, int, bool, float, type(None)})
# Every blob map holds the text "blob" (its `$type`), which DAG-CBOR writes as these bytes.
_BLOB_TEXT: Final = b"\x64blob"
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


_record_dumps = json.JSONEncoder(
    ensure_ascii=False,
    separators=(",", ":"),
    allow_nan=False,
    sort_keys=True,
    default=json_default,
).encode


class Entry:
    """One event of the log: its key (`time_us`) and seq, what filters look at, its JSON and
    the frames made from it once for every subscriber that receives them."""

    __slots__ = ("key", "seq", "kind", "did", "collection", "body", "packed", "v2", "v2_packed")

    def __init__(
        self, key: int, kind: str, did: str, collection: str | None, body: bytes, seq: int = 0
    ) -> None:
        self.key = key
        self.seq = seq  # given by the log when the event is appended
        self.kind = kind  # commit, identity, account, or sync (which v1 never sends)
        self.did = did
        # None for all but commits: collection filters never hold the others back.
        self.collection = collection
        self.body = body  # the v1 event (for a sync, the same shape, which v1 never sends)
        self.packed: bytes | None = None  # the v1 zstd frame
        self.v2: bytes | None = None  # the subscribeEvents frame
        self.v2_packed: bytes | None = None  # ... and its zstd frame


def go_json(value: Any) -> str:
    """JSON text as Go's encoding/json writes it (see the module docstring)."""
    return _go_escaped(_dumps(value))


def _go_escaped(text: str) -> str:
    for char, escape in _GO_ESCAPES:
        if char in text:
            text = text.replace(char, escape)
    return text


def record_json(block: bytes) -> bytes:
    """A record's DAG-CBOR block, strictly decoded (DecodeError), as Go writes the record."""
    record = cbor.decode(block)
    if _BLOB_TEXT in block:
        return go_json(_go_value(record)).encode()
    return _go_escaped(_record_dumps(record)).encode()


def _go_value(value: Any) -> Any:
    """A decoded DAG-CBOR value as the JSON data model, maps in Go's order."""
    if isinstance(value, dict):
        if (
            value.keys() == _BLOB_KEYS
            and value["$type"] == "blob"
            and isinstance(value["ref"], CID)
            and isinstance(value["mimeType"], str)
            and type(value["size"]) is int
        ):
            return {
                "$type": "blob",
                "ref": {"$link": cid_text(value["ref"])},
                "mimeType": value["mimeType"],
                "size": value["size"],
            }
        out = {}
        for key in sorted(value):
            item = value[key]
            out[key] = item if type(item) in _LEAVES else _go_value(item)
        return out
    if isinstance(value, list):
        return [item if type(item) in _LEAVES else _go_value(item) for item in value]
    if isinstance(value, CID | bytes):
        return json_default(value)
    return value


def _event(did: str, time_us: int, kind: str, body: dict[str, Any]) -> bytes:
    """The v1 envelope around `body`, encoded in one pass."""
    return go_json({"did": did, "time_us": time_us, "kind": kind, kind: body}).encode()


def commit_json(
    did: str,
    time_us: int,
    rev: str,
    operation: str,
    collection: str,
    rkey: str,
    record: bytes | None = None,
    cid: CID | None = None,
) -> bytes:
    """A `commit` event; `record` (its JSON, from record_json) and `cid` are absent for a
    delete. Written piece by piece: the record is JSON already."""
    head = _go_escaped(
        f'{{"did":{encode_basestring(did)},"time_us":{time_us:d},"kind":"commit",'
        f'"commit":{{"rev":{encode_basestring(rev)},"operation":{encode_basestring(operation)},'
        f'"collection":{encode_basestring(collection)},"rkey":{encode_basestring(rkey)}'
    ).encode()
    if record is None or cid is None:
        return head + b"}}"
    return b"".join((head, b',"record":', record, b',"cid":"', cid_text(cid).encode(), b'"}}'))


def identity_json(did: str, time_us: int, seq: int, time: str, handle: str | None) -> bytes:
    """An `identity` event: the upstream #identity with its seq and time."""
    body: dict[str, Any] = {"did": did}
    if handle is not None:
        body["handle"] = handle
    body |= {"seq": seq, "time": time}
    return _event(did, time_us, "identity", body)


def account_json(
    did: str, time_us: int, seq: int, time: str, active: bool, status: str | None
) -> bytes:
    """An `account` event: the upstream #account with its seq and time."""
    body: dict[str, Any] = {"active": active, "did": did, "seq": seq}
    if status is not None:
        body["status"] = status
    body["time"] = time
    return _event(did, time_us, "account", body)


def sync_json(did: str, time_us: int, seq: int, time: str, rev: str, blocks: bytes) -> bytes:
    """A `sync` event in the v1 shape: kept for subscribeEvents, never sent on /subscribe."""
    body = {"blocks": _go_value(blocks), "did": did, "rev": rev, "seq": seq, "time": time}
    return _event(did, time_us, "sync", body)

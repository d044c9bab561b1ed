"""JSON <-> atproto data model: `$link`, `$bytes`, blob refs (spec-data-model.md).

`from_json` takes parsed JSON (dicts, lists, ...) and returns data-model values (CIDs, bytes)
ready for `atcore.cbor.encode`; `to_json` is the inverse, ready for `json.dumps`.

JSON can carry what the data model cannot: Python's decoder turns an escaped lone UTF-16
surrogate (`"\ud800"`) into a str that no UTF-8 encoder (CBOR, SQLite, a JSON response)
accepts, and reads integers of any size. Both are refused here, at the edge, before anything
can store them.
"""

from __future__ import annotations

import base64
from typing import Any

from atcore.cbor import MAX_DEPTH
from atcore.cid import CID, RAW, cid_text, parse_cid
from atcore.errors import DecodeError, InvalidCid
from atcore.syntax.integer import INT64_MAX, INT64_MIN


def from_json(value: Any, max_depth: int = MAX_DEPTH) -> Any:
    """Convert parsed JSON to data-model values, validating `$`-conventions and blob refs."""
    return _from_json(value, 0, max_depth)


def record_from_json(value: Any) -> dict[str, Any]:
    """A top-level record: an object whose nested `$type`s are non-empty strings."""
    if not isinstance(value, dict):
        raise DecodeError("a record must be a JSON object")
    converted: dict[str, Any] = from_json(value)
    return converted


def _from_json(value: Any, depth: int, max_depth: int) -> Any:
    if depth > max_depth:
        raise DecodeError(f"nesting deeper than {max_depth} levels")
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise DecodeError("integers must fit in 64 bits")
        return value
    if isinstance(value, float):
        if value.is_integer():
            return int(value)
        raise DecodeError("floats are not allowed in the atproto data model")
    if isinstance(value, list):
        return [_from_json(item, depth + 1, max_depth) for item in value]
    if not isinstance(value, dict):
        raise DecodeError(f"type {type(value).__name__} is not in the data model")
    if "$link" in value:
        return _link(value)
    if "$bytes" in value:
        return _bytes(value)
    if "$type" in value:
        kind = value["$type"]
        if not isinstance(kind, str) or not kind:
            raise DecodeError("$type must be a non-empty string")
        if kind == "blob":
            _check_blob(value)
    return {_text(key): _from_json(item, depth + 1, max_depth) for key, item in value.items()}


def _text(value: str) -> str:
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            raise DecodeError("a string holds a lone UTF-16 surrogate (not Unicode text)") from None
    return value


def _link(value: dict[str, Any]) -> CID:
    text = value["$link"]
    if len(value) != 1 or not isinstance(text, str):
        raise DecodeError("a $link object has exactly one string field")
    try:
        return parse_cid(text)
    except InvalidCid as exc:
        raise DecodeError(str(exc)) from exc


def _bytes(value: dict[str, Any]) -> bytes:
    text = value["$bytes"]
    if len(value) != 1 or not isinstance(text, str):
        raise DecodeError("a $bytes object has exactly one string field")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except ValueError as exc:  # binascii.Error, or a non-ASCII character
        raise DecodeError("$bytes is not valid base64") from exc


def _check_blob(value: dict[str, Any]) -> None:
    ref, mime, size = value.get("ref"), value.get("mimeType"), value.get("size")
    if not isinstance(ref, dict) or "$link" not in ref:
        raise DecodeError("blob ref must be a $link")
    if _link(ref).cid_bytes[1] != RAW:
        raise DecodeError("blob ref must use the raw codec")
    if not isinstance(mime, str) or not mime:
        raise DecodeError("blob mimeType must be a non-empty string")
    if type(size) is not int or size < 0:
        raise DecodeError("blob size must be a non-negative integer")


def to_json(value: Any) -> Any:
    """Data-model values to JSON-ready values (CIDs as `$link`, bytes as unpadded `$bytes`)."""
    if isinstance(value, dict):
        return {key: to_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [to_json(item) for item in value]
    if isinstance(value, CID | bytes):
        return json_default(value)
    return value


def json_default(value: Any) -> Any:
    """json.dumps' `default`: a CID or bytes as its JSON form, so a data-model value is dumped
    in one pass, without a to_json copy first."""
    if isinstance(value, CID):
        return {"$link": cid_text(value)}
    if isinstance(value, bytes):
        return {"$bytes": base64.b64encode(value).decode().rstrip("=")}
    raise TypeError(f"{type(value).__name__} is not a data-model value")


def blob_refs(value: Any) -> list[CID]:
    """CIDs of every blob a data-model value references, typed or legacy (`cid` + `mimeType`)."""
    found: list[CID] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            if item.get("$type") == "blob" and isinstance(item.get("ref"), CID):
                found.append(item["ref"])
            elif set(item) == {"cid", "mimeType"} and isinstance(item["cid"], str):
                try:
                    found.append(parse_cid(item["cid"]))
                except InvalidCid:
                    pass
            else:
                stack.extend(item.values())
    return found

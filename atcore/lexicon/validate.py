"""Validating data-model values against Lexicon schemas (spec-lexicon.md, guide-data-validation.md).

Values are data-model values as `atcore.datamodel.from_json` or `atcore.cbor.decode` produce
them. Failures raise `InvalidRecord` naming the path, e.g. `Record/embed/images/0/alt must be a
string`. Unexpected fields are allowed; `knownValues` are advice, `enum` and `const` are not.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from atcore.cid import CID, RAW
from atcore.errors import InvalidLexicon, InvalidRecord
from atcore.lexicon.catalog import Catalog
from atcore.lexicon.graphemes import count_graphemes
from atcore.lexicon.schema import Def
from atcore.syntax import (
    atidentifier,
    aturi,
    cidstring,
    datetime,
    did,
    handle,
    language,
    nsid,
    recordkey,
    tid,
    uri,
)

FORMATS: dict[str, Callable[[str], bool]] = {
    "at-identifier": atidentifier.is_valid_at_identifier,
    "at-uri": aturi.is_valid_aturi,
    "cid": cidstring.is_valid_cid_string,
    "datetime": datetime.is_valid_datetime,
    "did": did.is_valid_did,
    "handle": handle.is_valid_handle,
    "language": language.is_valid_language,
    "nsid": nsid.is_valid_nsid,
    "record-key": recordkey.is_valid_record_key,
    "tid": tid.is_valid_tid,
    "uri": uri.is_valid_uri,
}
_RECORD_KEY_TYPES: dict[str, Callable[[str], bool]] = {
    "any": recordkey.is_valid_record_key,
    "nsid": nsid.is_valid_nsid,
    "tid": tid.is_valid_tid,
}


def validate_record(catalog: Catalog, collection: str, value: Any, rkey: str | None = None) -> None:
    """Check a record of type `collection` (its `$type` must match) and, if given, its key."""
    schema = catalog.get_def(collection)
    if schema["type"] != "record":
        raise InvalidRecord(f"{collection} is a {schema['type']}, not a record type")
    if rkey is not None:
        _check_record_key(schema["key"], rkey)
    _validator(catalog).record(schema, collection, value, "Record")


def validate_value(catalog: Catalog, ref: str, value: Any, path: str = "Value") -> None:
    """Check a value against a named definition (`nsid` or `nsid#name`), e.g. an event body."""
    _validator(catalog).ref_target(ref, value, path)


def validate_input(catalog: Catalog, nsid_: str, value: Any) -> None:
    """Check a procedure's JSON request body against its `input` schema, when it has one."""
    _validate_body(catalog, nsid_, "input", value, "Input")


def validate_output(catalog: Catalog, nsid_: str, value: Any) -> None:
    """Check a query's or procedure's JSON response body against its `output` schema."""
    _validate_body(catalog, nsid_, "output", value, "Output")


def _validate_body(catalog: Catalog, nsid_: str, key: str, value: Any, path: str) -> None:
    body = catalog.get_def(nsid_).get(key)
    if body is not None and "schema" in body:
        _validator(catalog).field(body["schema"], value, path)


@functools.lru_cache(maxsize=8)
def _validator(catalog: Catalog) -> Validator:
    """A catalog's validator, made once: it keeps no state between values, and building its
    table of checks cost as much as validating a small record (the appview's indexer)."""
    return Validator(catalog)


def _check_record_key(key_type: str, rkey: str) -> None:
    if key_type.startswith("literal:"):
        valid = rkey == key_type.removeprefix("literal:")
    else:
        valid = _RECORD_KEY_TYPES.get(key_type, recordkey.is_valid_record_key)(rkey)
    if not valid:
        raise InvalidRecord(f"record key {rkey!r:.100} does not match key type {key_type}")


def _kind(value: Any) -> str:
    """The data-model name of a value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "blob" if value.get("$type") == "blob" else "object"
    names = {bool: "boolean", int: "integer", str: "string", bytes: "bytes", list: "array"}
    return "cid-link" if isinstance(value, CID) else names.get(type(value), type(value).__name__)


def _is_blob(value: dict[str, Any]) -> bool:
    if value.get("$type") == "blob":
        size, mime = value.get("size"), value.get("mimeType")
        ref = value.get("ref")
        return (
            isinstance(ref, CID)
            and ref.cid_bytes[1] == RAW
            and isinstance(mime, str)
            and bool(mime)
            and type(size) is int
            and size >= 0
        )
    # Legacy blob: {"cid": "<string>", "mimeType": "..."}, readable but never written anew.
    return (
        set(value) == {"cid", "mimeType"}
        and all(isinstance(v, str) for v in value.values())
        and cidstring.is_valid_cid_string(value["cid"])
    )


def _accepts(patterns: list[str], mime: str) -> bool:
    for pattern in patterns:
        if pattern == "*/*" or pattern == mime:
            return True
        if pattern.endswith("/*") and mime.startswith(pattern[:-1]):
            return True
    return False


class Validator:
    """Walks a value alongside its schema; holds nothing but the catalog and its checks, so
    one instance serves every call on that catalog."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.checks: dict[str, Callable[[Def, Any, str], None]] = {
            "null": self.null,
            "boolean": self.boolean,
            "integer": self.integer,
            "string": self.string,
            "bytes": self.bytes_,
            "cid-link": self.cid_link,
            "blob": self.blob,
            "array": self.array,
            "object": self.object,
            "ref": self.ref,
            "union": self.union,
            "unknown": self.unknown,
        }

    def field(self, schema: Def, value: Any, path: str) -> None:
        self.checks[schema["type"]](schema, value, path)

    def fail(self, path: str, message: str) -> InvalidRecord:
        return InvalidRecord(f"{path} {message}")

    def expect(self, ok: bool, value: Any, path: str, article_type: str) -> None:
        if not ok:
            raise self.fail(path, f"must be {article_type}, not {_kind(value)}")

    def null(self, schema: Def, value: Any, path: str) -> None:
        self.expect(value is None, value, path, "null")

    def boolean(self, schema: Def, value: Any, path: str) -> None:
        self.expect(isinstance(value, bool), value, path, "a boolean")
        self.const_enum(schema, value, path)

    def integer(self, schema: Def, value: Any, path: str) -> None:
        self.expect(type(value) is int, value, path, "an integer")
        self.const_enum(schema, value, path)
        if "minimum" in schema and value < schema["minimum"]:
            raise self.fail(path, f"must be at least {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            raise self.fail(path, f"must be at most {schema['maximum']}")

    def const_enum(self, schema: Def, value: Any, path: str) -> None:
        if "const" in schema and value != schema["const"]:
            raise self.fail(path, f"must be {schema['const']!r}")
        if "enum" in schema and value not in schema["enum"]:
            raise self.fail(path, f"must be one of {schema['enum']!r:.300}")

    def string(self, schema: Def, value: Any, path: str) -> None:
        self.expect(isinstance(value, str), value, path, "a string")
        self.const_enum(schema, value, path)
        if "minLength" in schema or "maxLength" in schema:
            self.length(schema, len(value.encode()), path, "UTF-8 bytes")
        if "minGraphemes" in schema or "maxGraphemes" in schema:
            # A grapheme holds at least one code point: skip the count when that decides.
            low, high = schema.get("minGraphemes", 0), schema.get("maxGraphemes")
            if low > 0 or (high is not None and len(value) > high):
                graphemes = count_graphemes(value)
                if graphemes < low:
                    raise self.fail(path, f"must be at least {low} graphemes long")
                if high is not None and graphemes > high:
                    raise self.fail(path, f"must be at most {high} graphemes long")
        fmt = schema.get("format")
        if fmt is not None and not FORMATS[fmt](value):
            raise self.fail(path, f"must be a valid {fmt} (got {value!r:.100})")

    def length(self, schema: Def, size: int, path: str, unit: str) -> None:
        if "minLength" in schema and size < schema["minLength"]:
            raise self.fail(path, f"must be at least {schema['minLength']} {unit} long")
        if "maxLength" in schema and size > schema["maxLength"]:
            raise self.fail(path, f"must be at most {schema['maxLength']} {unit} long")

    def bytes_(self, schema: Def, value: Any, path: str) -> None:
        self.expect(isinstance(value, bytes), value, path, "bytes")
        self.length(schema, len(value), path, "bytes")

    def cid_link(self, schema: Def, value: Any, path: str) -> None:
        self.expect(isinstance(value, CID), value, path, "a cid-link")

    def blob(self, schema: Def, value: Any, path: str) -> None:
        self.expect(isinstance(value, dict) and _is_blob(value), value, path, "a blob")
        mime = value["mimeType"]
        if "accept" in schema and not _accepts(schema["accept"], mime):
            raise self.fail(path, f"has MIME type {mime!r:.100}, not one of {schema['accept']}")
        size = value.get("size")  # legacy blobs carry no size
        if "maxSize" in schema and size is not None and size > schema["maxSize"]:
            raise self.fail(path, f"is {size} bytes, over the {schema['maxSize']} byte limit")

    def array(self, schema: Def, value: Any, path: str) -> None:
        self.expect(isinstance(value, list), value, path, "an array")
        self.length(schema, len(value), path, "items")
        items = schema["items"]
        for index, item in enumerate(value):
            self.field(items, item, f"{path}/{index}")

    def object(self, schema: Def, value: Any, path: str) -> None:
        self.expect(isinstance(value, dict), value, path, "an object")
        for name in schema.get("required", ()):
            if name not in value:
                raise self.fail(f"{path}/{name}", "is required")
        nullable = schema.get("nullable", ())
        for name, prop in schema["properties"].items():
            item = value.get(name)
            if item is not None:
                self.field(prop, item, f"{path}/{name}")
            elif name in value and name not in nullable:
                raise self.fail(f"{path}/{name}", "must not be null")

    def record(self, schema: Def, nsid_: str, value: Any, path: str) -> None:
        self.expect(isinstance(value, dict), value, path, "an object")
        if value.get("$type") != nsid_:
            raise self.fail(f"{path}/$type", f"must be {nsid_!r}, not {value.get('$type')!r:.100}")
        self.object(schema["record"], value, path)

    def ref(self, schema: Def, value: Any, path: str) -> None:
        self.ref_target(schema["ref"], value, path)

    def ref_target(self, ref: str, value: Any, path: str) -> None:
        target = self.catalog.resolve(ref)
        kind = target["type"]
        if kind == "record":
            self.record(target, ref, value, path)
        elif kind in self.checks and kind not in ("ref", "union", "unknown"):
            self.field(target, value, path)
        else:
            raise InvalidLexicon(f"{ref} is a {kind}; a ref cannot point to it")

    def union(self, schema: Def, value: Any, path: str) -> None:
        self.expect(isinstance(value, dict), value, path, "an object")
        kind = value.get("$type")
        if not isinstance(kind, str):
            raise self.fail(f"{path}/$type", "is required in a union member")
        if kind.endswith("#main"):
            raise self.fail(f"{path}/$type", "must name a main definition without '#main'")
        if kind in schema["refs"]:
            if self.catalog.resolve(kind)["type"] not in ("object", "record"):
                raise InvalidLexicon(f"union member {kind} must be an object or a record")
            self.ref_target(kind, value, path)
        elif schema.get("closed", False):
            raise self.fail(f"{path}/$type", f"{kind!r:.100} is not one of {schema['refs']}")

    def unknown(self, schema: Def, value: Any, path: str) -> None:
        # Any object, but not one shaped like a blob (spec-lexicon.md, "unknown").
        is_object = isinstance(value, dict) and value.get("$type") != "blob"
        self.expect(is_object, value, path, "an object")

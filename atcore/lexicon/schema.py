"""Parsing and checking Lexicon schema documents (spec-lexicon.md, "Lexicon Files").

`parse_lexicon` checks a document's structure and returns a `LexiconDoc` whose definitions are
copies with every reference made absolute (`nsid#name`, or bare `nsid` for `main`), so that
validation compares `$type` values with references directly. Unknown schema fields are kept
and ignored, as the spec lets the language grow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from atcore.errors import InvalidLexicon
from atcore.syntax.nsid import is_valid_nsid

Def = dict[str, Any]

PRIMARY_TYPES = frozenset(["record", "query", "procedure", "subscription", "permission-set"])
STRING_FORMATS = frozenset(
    [
        "at-identifier",
        "at-uri",
        "cid",
        "datetime",
        "did",
        "handle",
        "nsid",
        "tid",
        "record-key",
        "uri",
        "language",
    ]
)
_FIELD_TYPES = frozenset(
    ["null", "boolean", "integer", "string", "bytes", "cid-link", "blob", "array", "object"]
    + ["ref", "union", "unknown"]
)
# ref, union and unknown are only allowed inline; token only as a named definition.
_NAMED_TYPES = (_FIELD_TYPES - {"ref", "union", "unknown"}) | {"token"}
_PARAM_TYPES = frozenset(["boolean", "integer", "string"])
_BODY_SCHEMA_TYPES = frozenset(["object", "ref", "union"])
_REPO_ACTIONS = frozenset(["create", "update", "delete"])
_BODIES = {"query": ("output",), "procedure": ("input", "output"), "subscription": ("message",)}


@dataclass(frozen=True)
class LexiconDoc:
    """A checked Lexicon document; `defs` hold absolute references."""

    id: str
    defs: dict[str, Def]
    description: str | None = None


def parse_lexicon(doc: Any) -> LexiconDoc:
    """Check a Lexicon JSON document (already parsed) and return it with absolute refs."""
    if not isinstance(doc, dict):
        raise InvalidLexicon("a lexicon document must be a JSON object")
    if type(doc.get("lexicon")) is not int or doc["lexicon"] != 1:
        raise InvalidLexicon("lexicon: must be the integer 1")
    nsid = doc.get("id")
    if not isinstance(nsid, str) or not is_valid_nsid(nsid):
        raise InvalidLexicon(f"id: not a valid NSID: {nsid!r:.100}")
    description = _opt(doc, "description", str, nsid)
    defs = doc.get("defs")
    if not isinstance(defs, dict) or not defs:
        raise InvalidLexicon(f"{nsid}: defs must be a non-empty object")
    checked: dict[str, Def] = {}
    for name, schema in defs.items():
        if not isinstance(name, str) or not name or "#" in name:
            raise InvalidLexicon(f"{nsid}: bad definition name {name!r:.100}")
        where = f"{nsid}#{name}"
        kind = schema.get("type") if isinstance(schema, dict) else None
        if kind in PRIMARY_TYPES and name != "main":
            raise InvalidLexicon(f"{where}: a {kind} definition must be named main")
        if kind not in PRIMARY_TYPES and kind not in _NAMED_TYPES:
            raise InvalidLexicon(f"{where}: type {kind!r} cannot be a named definition")
        checked[name] = _Checker(nsid).definition(schema, where)
    return LexiconDoc(id=nsid, defs=checked, description=description)


def _is(value: Any, kind: type) -> bool:
    # bool is an int subclass in Python but a distinct type in the data model.
    return isinstance(value, kind) and isinstance(value, bool) == (kind is bool)


def _opt(schema: Def, key: str, kind: type, where: str) -> Any:
    value = schema.get(key)
    if value is not None and not _is(value, kind):
        raise InvalidLexicon(f"{where}: {key} must be of type {kind.__name__}")
    return value


def _opt_list(schema: Def, key: str, kind: type, where: str) -> list[Any] | None:
    value: list[Any] | None = _opt(schema, key, list, where)
    if value is not None and not all(_is(item, kind) for item in value):
        raise InvalidLexicon(f"{where}: {key} must be a list of {kind.__name__}")
    return value


def _obj(schema: Def, key: str, where: str, required: bool = False) -> Def | None:
    value = schema.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, dict):
        raise InvalidLexicon(f"{where}: {key} must be an object")
    return value


class _Checker:
    """Checks the definitions of one document, resolving its local references."""

    def __init__(self, nsid: str) -> None:
        self.nsid = nsid

    def ref(self, ref: Any, where: str) -> str:
        if not isinstance(ref, str):
            raise InvalidLexicon(f"{where}: a reference must be a string")
        base, _, name = ref.partition("#")
        if "#" in ref and not name:
            raise InvalidLexicon(f"{where}: empty definition name in reference {ref!r:.100}")
        if base and not is_valid_nsid(base):
            raise InvalidLexicon(f"{where}: not a valid reference: {ref!r:.100}")
        base = base or self.nsid
        return base if name in ("", "main") else f"{base}#{name}"

    def definition(self, schema: Def, where: str) -> Def:
        kind = schema["type"]
        out = dict(schema)
        if kind == "record":
            key = schema.get("key")
            if not isinstance(key, str) or not key:
                raise InvalidLexicon(f"{where}: record key type must be a non-empty string")
            record = _obj(schema, "record", where, required=True)
            assert record is not None
            if record.get("type") != "object":
                raise InvalidLexicon(f"{where}: record schema must have type object")
            out["record"] = self.field(record, f"{where}/record")
        elif kind in ("query", "procedure", "subscription"):
            out.update(self.endpoint(schema, kind, where))
        elif kind == "permission-set":
            self.permission_set(schema, where)
        elif kind != "token":
            out = self.field(schema, where)
        _opt(schema, "description", str, where)
        return out

    def endpoint(self, schema: Def, kind: str, where: str) -> Def:
        out: Def = {}
        params = _obj(schema, "parameters", where)
        if params is not None:
            out["parameters"] = self.params(params, f"{where}/parameters")
        for body_key in _BODIES[kind]:
            body = _obj(schema, body_key, where, required=body_key == "message")
            if body is None:
                continue
            body_where = f"{where}/{body_key}"
            if body_key != "message" and not isinstance(body.get("encoding"), str):
                raise InvalidLexicon(f"{body_where}: encoding must be a string")
            body_schema = _obj(body, "schema", body_where, required=body_key == "message")
            if body_schema is not None:
                allowed = ("union",) if body_key == "message" else _BODY_SCHEMA_TYPES
                if body_schema.get("type") not in allowed:
                    raise InvalidLexicon(f"{body_where}: schema must be one of {sorted(allowed)}")
                body = {**body, "schema": self.field(body_schema, f"{body_where}/schema")}
            out[body_key] = body
        for error in _opt_list(schema, "errors", dict, where) or []:
            if not isinstance(error.get("name"), str) or not error["name"]:
                raise InvalidLexicon(f"{where}: every error needs a name")
        return out

    def params(self, schema: Def, where: str) -> Def:
        if schema.get("type") != "params":
            raise InvalidLexicon(f"{where}: must have type params")
        properties = _obj(schema, "properties", where, required=True)
        assert properties is not None
        checked: dict[str, Def] = {}
        for name, prop in properties.items():
            prop_where = f"{where}/{name}"
            kind = prop.get("type") if isinstance(prop, dict) else None
            items = prop.get("items") if kind == "array" else prop
            item_kind = items.get("type") if isinstance(items, dict) else None
            if item_kind not in _PARAM_TYPES:
                raise InvalidLexicon(f"{prop_where}: parameters must be boolean, integer, string")
            checked[name] = self.field(prop, prop_where)
        self.required(schema, checked, where)
        return {**schema, "properties": checked}

    def required(self, schema: Def, properties: dict[str, Def], where: str) -> None:
        for key in ("required", "nullable"):
            for name in _opt_list(schema, key, str, where) or []:
                if name not in properties:
                    raise InvalidLexicon(f"{where}: {key} names undefined property {name!r}")

    def permission_set(self, schema: Def, where: str) -> None:
        for key in ("title", "detail"):
            _opt(schema, key, str, where)
            localized = _obj(schema, f"{key}:lang", where) or {}
            if not all(isinstance(text, str) for text in localized.values()):
                raise InvalidLexicon(f"{where}: {key}:lang values must be strings")
        permissions = _opt_list(schema, "permissions", dict, where)
        if permissions is None:
            raise InvalidLexicon(f"{where}: permissions must be a list of objects")
        for index, permission in enumerate(permissions):
            self.permission(permission, f"{where}/permissions/{index}")

    def permission(self, schema: Def, where: str) -> None:
        if schema.get("type") != "permission" or not isinstance(schema.get("resource"), str):
            raise InvalidLexicon(f"{where}: must have type permission and a resource string")
        if schema["resource"] == "repo":
            collections = _opt_list(schema, "collection", str, where)
            if not collections or not all(is_valid_nsid(c) for c in collections):
                raise InvalidLexicon(f"{where}: collection must be a non-empty list of NSIDs")
            if not set(_opt_list(schema, "action", str, where) or []) <= _REPO_ACTIONS:
                raise InvalidLexicon(f"{where}: action must be create, update or delete")
        elif schema["resource"] == "rpc":
            if not _opt_list(schema, "lxm", str, where):
                raise InvalidLexicon(f"{where}: lxm must be a non-empty list of strings")
            aud, inherit = _opt(schema, "aud", str, where), _opt(schema, "inheritAud", bool, where)
            if aud is None and not inherit:
                raise InvalidLexicon(f"{where}: aud is required unless inheritAud is true")

    def field(self, schema: Any, where: str) -> Def:
        kind = schema.get("type") if isinstance(schema, dict) else None
        if kind not in _FIELD_TYPES:
            raise InvalidLexicon(f"{where}: {kind!r} is not a field type")
        out = dict(schema)
        _opt(schema, "description", str, where)
        if kind == "boolean":
            _opt(schema, "default", bool, where)
            _opt(schema, "const", bool, where)
        elif kind == "integer":
            for key in ("minimum", "maximum", "default", "const"):
                _opt(schema, key, int, where)
            _opt_list(schema, "enum", int, where)
        elif kind == "string":
            self.string(schema, where)
        elif kind in ("bytes", "array"):
            for key in ("minLength", "maxLength"):
                _opt(schema, key, int, where)
            if kind == "array":
                items = _obj(schema, "items", where, required=True)
                out["items"] = self.field(items, f"{where}/items")
        elif kind == "blob":
            _opt(schema, "maxSize", int, where)
            for pattern in _opt_list(schema, "accept", str, where) or []:
                major, slash, minor = pattern.partition("/")
                if not slash or not major or not minor or ("*" in minor and minor != "*"):
                    raise InvalidLexicon(f"{where}: bad accept pattern {pattern!r:.100}")
        elif kind == "object":
            properties = _obj(schema, "properties", where, required=True)
            assert properties is not None
            out["properties"] = {
                name: self.field(prop, f"{where}/{name}") for name, prop in properties.items()
            }
            self.required(schema, out["properties"], where)
        elif kind == "ref":
            out["ref"] = self.ref(schema.get("ref"), where)
        elif kind == "union":
            refs = _opt_list(schema, "refs", str, where)
            if refs is None:
                raise InvalidLexicon(f"{where}: refs must be a list of strings")
            if _opt(schema, "closed", bool, where) and not refs:
                raise InvalidLexicon(f"{where}: a closed union needs at least one ref")
            out["refs"] = [self.ref(ref, where) for ref in refs]
        return out

    def string(self, schema: Def, where: str) -> None:
        fmt = _opt(schema, "format", str, where)
        if fmt is not None and fmt not in STRING_FORMATS:
            raise InvalidLexicon(f"{where}: unknown string format {fmt!r:.100}")
        for key in ("minLength", "maxLength", "minGraphemes", "maxGraphemes"):
            _opt(schema, key, int, where)
        for key in ("knownValues", "enum"):
            _opt_list(schema, key, str, where)
        if _opt(schema, "default", str, where) is not None and "const" in schema:
            raise InvalidLexicon(f"{where}: const and default are mutually exclusive")
        _opt(schema, "const", str, where)

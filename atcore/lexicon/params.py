"""XRPC query parameters: string -> typed values, then Lexicon checks (spec-lexicon.md, "params").

HTTP query strings carry only text; `params` schemas allow boolean, integer and string values, or
arrays of them (a repeated query parameter). An empty value counts as absent, as in the reference
XRPC server: clients send `?cursor=` for an unset cursor. Defaults fill absent parameters.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from atcore.errors import InvalidRecord, InvalidSyntax
from atcore.lexicon.catalog import Catalog
from atcore.lexicon.schema import Def
from atcore.lexicon.validate import Validator
from atcore.syntax.integer import parse_integer


def validate_params(
    catalog: Catalog, nsid: str, params: Mapping[str, str | list[str]]
) -> dict[str, Any]:
    """Typed, checked parameters of endpoint `nsid`; unknown parameters are left out."""
    endpoint = catalog.get_def(nsid)
    if endpoint["type"] not in ("query", "procedure", "subscription"):
        raise InvalidRecord(f"{nsid} is a {endpoint['type']}, not an XRPC endpoint")
    schema = endpoint.get("parameters")
    if schema is None:
        return {}
    validator = Validator(catalog)
    typed: dict[str, Any] = {}
    for name, prop in schema["properties"].items():
        path = f"Params/{name}"
        raw = params.get(name)
        values = [v for v in ([raw] if isinstance(raw, str) else raw or ()) if v]
        if not values:
            if "default" in prop:
                typed[name] = prop["default"]
            elif name in schema.get("required", ()):
                raise InvalidRecord(f"{path} is required")
            continue
        if prop["type"] == "array":
            value: Any = [_coerce(prop["items"], v, f"{path}/{i}") for i, v in enumerate(values)]
        elif len(values) > 1:
            raise InvalidRecord(f"{path} must be given once, not {len(values)} times")
        else:
            value = _coerce(prop, values[0], path)
        validator.field(prop, value, path)
        typed[name] = value
    return typed


def _coerce(schema: Def, text: str, path: str) -> Any:
    kind = schema["type"]
    if kind == "integer":
        try:
            return parse_integer(text)
        except InvalidSyntax as exc:
            raise InvalidRecord(f"{path} {exc}") from None
    if kind == "boolean":
        if text not in ("true", "false"):
            raise InvalidRecord(f"{path} must be true or false, not {text!r:.100}")
        return text == "true"
    return text

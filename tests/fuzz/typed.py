"""Hypothesis strategies for request parts typed by a method's lexicon: plausible values by
string format (so generated input gets past validation to the code behind it), mixed with the
hostile values of tests.fuzz.hostile."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from tests.fuzz.hostile import (
    HOSTILE_BYTES,
    WEIRD_NUMBERS,
    encode_json,
    json_values,
    mostly,
    pick,
)

# Plausible values by lexicon string format: they get a request past validation, to the code
# behind it. `live` keys name values the running service knows (its account, its records).
PLAUSIBLE: dict[str, list[str]] = {
    "did": ["did:plc:aaaaaaaaaaaaaaaaaaaaaaaa", "did:web:localhost"],
    "handle": ["fuzz.test", "nobody.test"],
    "at-identifier": ["did:plc:aaaaaaaaaaaaaaaaaaaaaaaa", "nobody.test"],
    "nsid": ["app.bsky.feed.post", "app.bsky.actor.profile", "app.bsky.feed.like"],
    "record-key": ["self", "3jzfcijpj2z2a", "x"],
    "tid": ["3jzfcijpj2z2a", "2222222222222"],
    "cid": ["bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm"],
    "at-uri": ["at://did:plc:aaaaaaaaaaaaaaaaaaaaaaaa/app.bsky.feed.post/3jzfcijpj2z2a"],
    "datetime": ["2024-01-01T00:00:00.000Z", "1985-04-12T23:20:50.12Z"],
    "uri": ["https://example.com", "http://127.0.0.1:1/x"],
    "language": ["en", "pt-BR"],
    "": ["fuzz", "x", "fuzz0.test"],
}


@dataclass(frozen=True)
class Vocabulary:
    """What generated values are made of: hostile strings, and plausible ones by format
    (`live()` adds the running service's own, keyed by format, at draw time)."""

    strings: st.SearchStrategy[str]
    records: st.SearchStrategy[Any]
    live: Callable[[], dict[str, list[str]]]

    def plausible(self, fmt: str, known: list[str] | None = None) -> st.SearchStrategy[str]:
        base = list(known or []) + PLAUSIBLE.get(fmt, PLAUSIBLE[""])

        def draw(live: dict[str, list[str]]) -> st.SearchStrategy[str]:
            return st.sampled_from(base + live.get(fmt, []))

        return st.builds(self.live).flatmap(draw)

    def value(self, schema: Mapping[str, Any]) -> st.SearchStrategy[Any]:
        """A value for one lexicon field: usually plausible, often hostile, now and then any
        JSON at all."""
        kind = schema.get("type")
        anything = json_values(self.strings)
        good: st.SearchStrategy[Any]
        bad: st.SearchStrategy[Any]
        if kind == "string":
            good = self.plausible(schema.get("format", ""), schema.get("knownValues"))
            bad = self.strings
        elif kind == "integer":
            good = st.integers(schema.get("minimum", 0), schema.get("maximum", 100))
            bad = st.one_of(
                st.integers(),
                st.sampled_from([-1, 2**63, 2**64, -(2**63) - 1, 10**30]),
                pick(WEIRD_NUMBERS),
            )
        elif kind == "boolean":
            good = bad = st.booleans()
        elif kind == "array":
            good = st.lists(self.value(schema.get("items", {})), max_size=3)
            bad = st.lists(self.value(schema.get("items", {})), min_size=50, max_size=300)
        elif kind in ("unknown", "ref", "union", "object"):
            good = self.records
            bad = anything
        elif kind == "cid-link":
            good = st.just({"$link": PLAUSIBLE["cid"][0]})
            bad = st.builds(lambda s: {"$link": s}, self.strings)
        elif kind == "bytes":
            good = st.just({"$bytes": "AAEC"})
            bad = st.builds(lambda s: {"$bytes": s}, self.strings)
        else:
            good = bad = anything
        return mostly(good, st.one_of(bad, anything))

    def object(self, schema: Mapping[str, Any] | None) -> st.SearchStrategy[dict[str, Any]]:
        """An object with its required properties (mostly), some optional ones, a stray key."""
        properties: Mapping[str, Any] = (schema or {}).get("properties", {})
        required = set((schema or {}).get("required", []))
        fields = {name: self.value(prop) for name, prop in sorted(properties.items())}
        must = {n: v for n, v in fields.items() if n in required}
        may = {n: v for n, v in fields.items() if n not in required}
        chosen = mostly(
            st.fixed_dictionaries(must, optional=may), st.fixed_dictionaries({}, optional=fields)
        )
        stray = st.dictionaries(self.strings, json_values(self.strings), max_size=1)
        return st.builds(lambda a, b: {**b, **a}, chosen, stray)


def bodies(
    input_schema: Mapping[str, Any] | None, words: Vocabulary
) -> st.SearchStrategy[bytes | None]:
    """A request body: mostly an object typed by the lexicon, else none, any JSON value, or
    raw hostile bytes."""
    typed = words.object(input_schema).map(encode_json)
    return mostly(
        typed,
        st.one_of(
            st.none(),
            json_values(words.strings).map(encode_json),
            pick(HOSTILE_BYTES),
            st.binary(max_size=64),
        ),
    )


def query_params(
    parameters: Mapping[str, Any] | None, words: Vocabulary
) -> st.SearchStrategy[list[tuple[str, str]]]:
    """Query parameters typed by the lexicon (each array item a repeat), plus hostile, empty,
    repeated or unknown ones."""

    def flatten(params: dict[str, Any]) -> list[tuple[str, str]]:
        pairs = []
        for name, value in params.items():
            for item in value if isinstance(value, list) else [value]:
                text = item if isinstance(item, str) else json.dumps(item, ensure_ascii=False)
                pairs.append((name, text))
        return pairs

    typed = words.object(parameters).map(flatten)
    names = sorted((parameters or {}).get("properties", {}))
    name = st.sampled_from(names) if names else words.strings
    extra = st.lists(
        st.tuples(st.one_of(name, words.strings), st.one_of(pick(WEIRD_NUMBERS), words.strings)),
        max_size=3,
    )
    return mostly(typed, st.builds(lambda a, b: a + b, typed, extra))

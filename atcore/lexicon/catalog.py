"""A set of Lexicon documents with reference resolution (spec-lexicon.md, "ref").

`Catalog.load_builtin()` holds the schemas vendored under `atcore/lexicons/` (com.atproto,
app.bsky, chat.bsky). The parsed documents are read once per process and shared read-only;
each call returns a fresh `Catalog`, so `add_document` on one never changes another.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from functools import cache
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Any

from atcore.errors import InvalidLexicon, LexiconNotFound
from atcore.lexicon.schema import Def, LexiconDoc, parse_lexicon

# The vendored set is ~2 MB; refuse anything far larger than a schema could be.
MAX_DOCUMENT_BYTES = 1 << 20


class Catalog:
    """Lexicon documents by NSID."""

    def __init__(self, docs: Iterable[LexiconDoc] = ()) -> None:
        self._docs: dict[str, LexiconDoc] = {}
        for doc in docs:
            self._insert(doc)

    @classmethod
    def load_builtin(cls) -> Catalog:
        """A catalog of the vendored com.atproto, app.bsky and chat.bsky schemas."""
        return cls(_builtin_documents())

    @classmethod
    def from_documents(cls, docs: Iterable[Any]) -> Catalog:
        """A catalog of parsed-JSON Lexicon documents; InvalidLexicon on the first bad one."""
        catalog = cls()
        for doc in docs:
            catalog.add_document(doc)
        return catalog

    def add_document(self, doc: Any) -> LexiconDoc:
        """Check and add one parsed-JSON Lexicon document (its NSID must be new here)."""
        parsed = parse_lexicon(doc)
        self._insert(parsed)
        return parsed

    def _insert(self, doc: LexiconDoc) -> None:
        if doc.id in self._docs:
            raise InvalidLexicon(f"{doc.id}: already in the catalog")
        self._docs[doc.id] = doc

    def __contains__(self, nsid: object) -> bool:
        return nsid in self._docs

    def __iter__(self) -> Iterator[LexiconDoc]:
        return iter(self._docs.values())

    def __len__(self) -> int:
        return len(self._docs)

    def get_def(self, nsid: str, name: str = "main") -> Def:
        """The definition `name` of document `nsid`; raises LexiconNotFound."""
        doc = self._docs.get(nsid)
        if doc is None:
            raise LexiconNotFound(f"no lexicon for {nsid!r:.300}")
        schema = doc.defs.get(name)
        if schema is None:
            raise LexiconNotFound(f"lexicon {nsid} has no definition {name!r:.100}")
        return schema

    def resolve(self, ref: str) -> Def:
        """The definition an absolute reference (`nsid` or `nsid#name`) points to."""
        nsid, _, name = ref.partition("#")
        return self.get_def(nsid, name or "main")

    def unresolved_refs(self) -> list[str]:
        """Every `ref`/`union` target in the catalog that names no known definition."""
        missing: set[str] = set()
        for doc in self._docs.values():
            for schema in doc.defs.values():
                for ref in _refs(schema):
                    try:
                        self.resolve(ref)
                    except LexiconNotFound:
                        missing.add(ref)
        return sorted(missing)


def _refs(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        kind = value.get("type")
        if kind == "ref":
            yield value["ref"]
        elif kind == "union":
            yield from value["refs"]
        for item in value.values():
            yield from _refs(item)
    elif isinstance(value, list):
        for item in value:
            yield from _refs(item)


@cache
def _builtin_documents() -> tuple[LexiconDoc, ...]:
    root = files("atcore").joinpath("lexicons")
    return tuple(parse_lexicon(_read_json(path)) for path in sorted(_json_files(root), key=str))


def _json_files(folder: Traversable) -> Iterator[Traversable]:
    for entry in folder.iterdir():
        if entry.is_dir():
            yield from _json_files(entry)
        elif entry.name.endswith(".json"):
            yield entry


def _read_json(path: Traversable) -> Any:
    data = path.read_bytes()
    if len(data) > MAX_DOCUMENT_BYTES:
        raise InvalidLexicon(f"{path.name}: larger than {MAX_DOCUMENT_BYTES} bytes")
    return json.loads(data)

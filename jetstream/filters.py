"""A subscriber's filter: wantedCollections, wantedDids, maxMessageSizeBytes (blog-jetstream.md,
"Consuming Jetstream"), from the query string or an `options_update` message.

As the official server: at most 100 collections, each an NSID or a prefix ending in `.*`
(`app.bsky.graph.*`; the part before `*` is not checked further); at most 10,000 distinct DIDs;
duplicates count once. Collection filters apply to commit events only: identity and account
events reach every subscriber whose DID filter lets them through. A bad or negative
maxMessageSizeBytes means no limit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from atcore.syntax.did import is_valid_did
from atcore.syntax.nsid import is_valid_nsid
from jetstream.events import Entry

__all__ = [
    "BadPayload",
    "Filter",
    "InvalidOptions",
    "MAX_COLLECTIONS",
    "MAX_DIDS",
    "options_update",
]

# /subscribe never sends #sync events; subscribeEvents may ask for them.
V1_KINDS: Final = frozenset({"commit", "identity", "account"})
MAX_COLLECTIONS: Final = 100
MAX_DIDS: Final = 10_000
# Far past the caps is abuse rather than a sloppy list: refused before de-duplicating.
_MAX_RAW_VALUES: Final = 100
_MAX_SIZE: Final = 2**32 - 1


class InvalidOptions(ValueError):
    """A filter the server refuses; the message says which value and why."""


class BadPayload(InvalidOptions):
    """An `options_update` payload of the wrong shape (not the filter's values)."""


@dataclass(frozen=True)
class Filter:
    kinds: frozenset[str] = V1_KINDS
    dids: frozenset[str] | None = None  # None: every DID
    collections: frozenset[str] | None = None  # None: every collection
    prefixes: tuple[str, ...] = ()  # `app.bsky.graph.` for `app.bsky.graph.*`
    max_size: int = 0  # 0: no limit

    def wants(self, entry: Entry) -> bool:
        if entry.kind not in self.kinds:
            return False
        if self.dids is not None and entry.did not in self.dids:
            return False
        collection = entry.collection
        if self.collections is None or not collection:
            return True
        return collection in self.collections or collection.startswith(self.prefixes)

    @classmethod
    def parse(
        cls,
        collections: Sequence[str],
        dids: Sequence[str],
        max_size: int | str | None,
        kinds: frozenset[str] = V1_KINDS,
    ) -> Filter:
        """A filter from the raw values; InvalidOptions for a bad one or too many."""
        full, prefixes = _collections(collections)
        return cls(
            kinds=kinds,
            dids=_dids(dids),
            collections=full if collections else None,
            prefixes=prefixes,
            max_size=_max_size(max_size),
        )


def _collections(values: Sequence[str]) -> tuple[frozenset[str], tuple[str, ...]]:
    if len(values) > MAX_COLLECTIONS * _MAX_RAW_VALUES:
        raise InvalidOptions(f"too many wanted collections: {len(values)}")
    full: set[str] = set()
    prefixes: dict[str, None] = {}
    for value in values:
        if not isinstance(value, str):
            raise BadPayload("wantedCollections must be strings")
        if value.endswith(".*"):
            prefixes[value[:-1]] = None
        elif is_valid_nsid(value):
            full.add(value)
        else:
            raise InvalidOptions(f"invalid collection: {value[:300]}")
        if len(full) + len(prefixes) > MAX_COLLECTIONS:
            raise InvalidOptions(f"too many wanted collections: more than {MAX_COLLECTIONS}")
    return frozenset(full), tuple(prefixes)


def _dids(values: Sequence[str]) -> frozenset[str] | None:
    if not values:
        return None
    if len(values) > MAX_DIDS * _MAX_RAW_VALUES:
        raise InvalidOptions(f"too many wanted DIDs: {len(values)}")
    for value in values:
        if not isinstance(value, str) or not is_valid_did(value):
            raise InvalidOptions(f"invalid DID: {str(value)[:300]}")
    dids = frozenset(values)
    if len(dids) > MAX_DIDS:
        raise InvalidOptions(f"too many wanted DIDs: {len(dids)} > {MAX_DIDS}")
    return dids


def _max_size(value: int | str | None) -> int:
    if isinstance(value, bool):
        return 0
    if isinstance(value, str):
        try:
            value = int(value)
        except ValueError:
            return 0
    if not isinstance(value, int) or not 0 < value <= _MAX_SIZE:
        return 0
    return value


def options_update(payload: Any) -> Filter:
    """The filter an `options_update` message's payload asks for (every field optional)."""
    if not isinstance(payload, dict):
        raise BadPayload("options_update payload must be an object")
    collections = payload.get("wantedCollections") or []
    dids = payload.get("wantedDids") or []
    if not isinstance(collections, list) or not isinstance(dids, list):
        raise BadPayload("wantedCollections and wantedDids must be lists")
    size = payload.get("maxMessageSizeBytes")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int)):
        raise BadPayload("maxMessageSizeBytes must be an integer")
    return Filter.parse(collections, dids, size)

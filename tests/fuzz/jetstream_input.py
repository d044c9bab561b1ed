"""What a Jetstream client sends besides HTTP: the query parameters of `/subscribe` and of
`network.bsky.jetstream.subscribeEvents` (blog-jetstream.md; no lexicon of ours has them, so
they are written here in a lexicon's shape for tests.fuzz.typed), and the client's
`options_update` (hello) messages over the socket."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from tests.fuzz.hostile import HOSTILE_BYTES, encode_json, json_values, mostly, pick
from tests.fuzz.typed import Vocabulary

DIDS = {"type": "array", "items": {"type": "string", "format": "did"}}
COLLECTIONS = {"type": "array", "items": {"type": "string", "format": "nsid"}}
SIZE = {"type": "integer", "minimum": 0, "maximum": 5000}
FILTER = {
    "wantedCollections": COLLECTIONS,
    "wantedDids": DIDS,
    "maxMessageSizeBytes": SIZE,
}
SUBSCRIBE: dict[str, Any] = {
    "properties": {
        **FILTER,
        "cursor": {"type": "integer", "minimum": 0, "maximum": 2**62},
        "compress": {"type": "boolean"},
        "requireHello": {"type": "boolean"},
    }
}
SUBSCRIBE_EVENTS: dict[str, Any] = {
    "properties": {
        "kinds": {
            "type": "array",
            "items": {"type": "string", "knownValues": ["commit", "identity", "account", "sync"]},
        },
        "dids": DIDS,
        "collections": COLLECTIONS,
        "maxMessageSizeBytes": SIZE,
        "cursor": {"type": "integer", "minimum": 0, "maximum": 2**62},
        "zstdDictionary": {"type": "string", "knownValues": ["1", "0"]},
    }
}
OPTIONS: dict[str, Any] = {"properties": FILTER}


def client_messages(words: Vocabulary) -> st.SearchStrategy[bytes | None]:
    """Mostly an options_update with a typed payload; else another type, any JSON, or bytes."""
    update = st.builds(
        lambda payload: {"type": "options_update", "payload": payload}, words.object(OPTIONS)
    )
    other = st.one_of(
        st.builds(
            lambda t, p: {"type": t, "payload": p}, words.strings, json_values(words.strings)
        ),
        json_values(words.strings),
    )
    return mostly(
        mostly(update, other).map(encode_json),
        st.one_of(st.none(), pick(HOSTILE_BYTES), st.binary(max_size=64)),
    )

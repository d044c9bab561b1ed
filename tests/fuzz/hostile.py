"""Hypothesis strategies for hostile XRPC requests: strings, numbers, JSON bodies, query
parameters and headers of the shapes that have made servers answer 500 (issue 14), typed by a
method's lexicon where it has one so that generated input gets past the first checks."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any, TypeVar

from hypothesis import strategies as st

T = TypeVar("T")
# A lone surrogate survives json.loads and breaks every UTF-8 encoder after it.
LONE = "\ud800"
WEIRD_NUMBERS = [
    "²",
    "٣",
    "-0",
    "+1",
    "0x10",
    "1e400",
    "-1e400",
    "1.5",
    "NaN",
    "Infinity",
    "-1",
    "0",
    "9223372036854775807",
    "9223372036854775808",
    "99999999999999999999",
    "9" * 5000,
    " 1",
    "1_000",
]
WEIRD_STRINGS = [
    "",
    " ",
    "\x00",
    LONE,
    "\udfff",
    "a\ud800b",
    "\u202e",
    "\ufeff",
    "[" * 2000,
    "{" * 2000,
    "a" * 10_000,
    "%",
    "%ff",
    "%00",
    "..",
    "../../etc/passwd",
    "/",
    "*",
    "self",
    "null",
    "did:plc:",
    "did:plc:" + "a" * 24,
    "did:web:localhost%3A1",
    "did:web:" + "a" * 300,
    "did:key:zQ3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBme",
    "at://",
    "at://did:plc:aaaaaaaaaaaaaaaaaaaaaaaa/app.bsky.feed.post/3jzfcijpj2z2a",
    "bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm",
    "bafkreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm",
    "3jzfcijpj2z2a",
    "app.bsky.feed.post",
    "com.atproto.sync.subscribeRepos",
    "localhost",
    "localhost:1",
    "localhost:²",
    "localhost:" + "9" * 5000,
    "127.0.0.1:1",
    "[::1]:1",
    "http://127.0.0.1:1",
    "https://",
    "1970-01-01T00:00:00Z",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-01:00",
    "2024-02-30T00:00:00.000Z",
    "x@x.x",
    "<script>@x.com",
    "en",
    *WEIRD_NUMBERS,
]
HOSTILE_BYTES = [
    b"",
    b"\xff\xfe\xfd",
    b"\xc3\x28",
    b'{"a": "\xff"}',
    b"\x00" * 64,
    b"[" * 100_000,
    b'{"a":' * 5000,
    b"1e400",
    b'{"text": 1e400}',
    b'{"a": -0}',
    b'{"a": 99999999999999999999}',
    b'{"a": ' + b"9" * 5000 + b"}",
    b'{"a": NaN, "b": Infinity}',
    b'{"a": 1, "a": 2}',
    b'"\\ud800"',
    b'{"\\ud800": 1}',
    b"null",
    b"[]",
    b"{",
    b"\xa2ab\x01",  # CBOR
    b"x" * (300 * 1024),
]
CONTENT_TYPES = [
    "application/json",
    "application/json; charset=utf-8",
    "application/json; charset=latin1",
    "text/plain",
    "application/vnd.ipld.car",
    "image/png",
    "*/*",
    "multipart/form-data; boundary=x",
    "",
    ";",
    "application/json\u00e9",
]
VERBS = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]


class Request:
    """One generated HTTP request (path relative to the app, query as (name, value) pairs).
    A plain class: its repr, cut short, is what a failure report shows."""

    def __init__(
        self,
        verb: str,
        path: str,
        query: list[tuple[str, str]],
        headers: dict[str, bytes],
        body: bytes | None,
    ) -> None:
        self.verb = verb
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body

    def __repr__(self) -> str:
        body = None if self.body is None else self.body[:300]
        return (
            f"{self.verb} {self.path[:300]} query={self.query!r:.400} "
            f"headers={self.headers!r:.400} body={body!r} ({len(self.body or b'')} bytes)"
        )


def pick(values: list[T]) -> st.SearchStrategy[T]:
    """One of `values` (sampled_from would describe the whole list, large values and all, in
    every report)."""
    return st.integers(0, len(values) - 1).map(lambda i: values[i])


def mostly(usual: st.SearchStrategy[T], other: st.SearchStrategy[T]) -> st.SearchStrategy[T]:
    """`usual` seven times in ten, else `other` (one_of would pick each about half the time)."""
    return st.integers(0, 9).flatmap(lambda i: usual if i < 7 else other)


def any_text() -> st.SearchStrategy[str]:
    """Strings of any code points, lone surrogates and controls included."""
    return st.text(st.characters(exclude_categories=()), max_size=40)


def hostile_strings(extra: Callable[[], list[str]] | None = None) -> st.SearchStrategy[str]:
    """A weird string from the list, any text, or (if given) one of `extra()`'s live values
    (the test account's DID and handle: values that get past lookups)."""
    options = [pick(WEIRD_STRINGS), any_text()]
    if extra is not None:
        options.append(st.builds(extra).flatmap(_one_of_or("")))
    return st.one_of(*options)


def json_scalars(strings: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(),
        strings,
        st.builds(lambda s: {"$link": s}, strings),
        st.builds(lambda s: {"$bytes": s}, strings),
        st.builds(lambda s: {"$type": s}, strings),
        st.just({"$bytes": base64.b64encode(b"\x00\xff").decode().rstrip("=")}),
        st.builds(
            lambda cid, mime, size: {
                "$type": "blob",
                "ref": {"$link": cid},
                "mimeType": mime,
                "size": size,
            },
            strings,
            strings,
            st.integers(),
        ),
    )


def json_values(strings: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    """Any JSON value, hostile leaves and keys, a few levels deep."""
    return st.recursive(
        json_scalars(strings),
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.dictionaries(strings, inner, max_size=4),
        ),
        max_leaves=12,
    )


def encode_json(value: Any) -> bytes:
    """JSON bytes with surrogates kept as escapes, as a hostile client sends them."""
    return json.dumps(value, ensure_ascii=True, allow_nan=True).encode()


def headers(
    auth: st.SearchStrategy[dict[str, bytes]], content_type: str
) -> st.SearchStrategy[dict[str, bytes]]:
    """Authorization (from `auth`), the right Content-Type or a lie, and now and then hostile
    values of the other headers the servers read."""
    raw = st.one_of(
        st.sampled_from(
            [b"", b"\xff\xfe", b"\xc3\xa9", b"[" * 2000, b"\x00", b"a" * 8000, b"-1", b"\xb2"]
        ),
        st.binary(max_size=40).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
        pick(WEIRD_NUMBERS).map(str.encode),
    )
    extras = st.fixed_dictionaries(
        {},
        optional={
            "content-type": st.one_of(st.sampled_from(CONTENT_TYPES).map(str.encode), raw),
            "content-length": st.one_of(pick(WEIRD_NUMBERS).map(str.encode), raw),
            "content-encoding": st.one_of(st.sampled_from([b"gzip", b"br", b"identity"]), raw),
            "atproto-proxy": st.one_of(
                st.sampled_from(
                    [
                        b"did:web:localhost%3A1#atproto_labeler",
                        b"did:plc:aaaaaaaaaaaaaaaaaaaaaaaa#bsky_appview",
                        b"#",
                        b"did:web:127.0.0.1#x",
                    ]
                ),
                raw,
            ),
            "atproto-accept-labelers": raw,
            "x-forwarded-for": raw,
            "accept-language": raw,
            "x-ratelimit-bypass": raw,
        },
    )
    honest = st.just({"content-type": content_type.encode()})
    return st.builds(lambda a, e: {**e, **a}, auth, mostly(honest, st.one_of(st.just({}), extras)))


def authorization(valid: Callable[[], list[bytes]] | None = None) -> st.SearchStrategy[bytes]:
    """Authorization header values: Bearer/Basic/DPoP/garbage of all shapes, or a valid one."""
    token_parts = st.one_of(
        st.sampled_from(
            [
                "",
                "a.b.c",
                "[" * 2000,
                "eyJ" + "W" * 2000,
                "e30.e30.",
                "eyJhbGciOiJub25lIn0.eyJzdWIiOiJkaWQ6cGxjOmEifQ.",
                "eyJhbGciOiJFUzI1NksifQ.W1tbW1tbW1tbW1tb.x",
            ]
        ),
        st.lists(st.text(max_size=20), min_size=1, max_size=4).map(".".join),
        st.lists(st.binary(max_size=30), min_size=3, max_size=3).map(
            lambda parts: ".".join(base64.urlsafe_b64encode(p).decode().rstrip("=") for p in parts)
        ),
    )
    basic = st.one_of(
        st.binary(max_size=40).map(lambda b: base64.b64encode(b).decode()),
        st.sampled_from(["", "!!!", "YWRtaW4=", "YWRtaW46", "=" * 5, "\u00e9"]),
    )
    forms = [
        st.builds(lambda t: ("Bearer " + t).encode("utf-8", "surrogatepass"), token_parts),
        st.builds(lambda t: ("Basic " + t).encode("utf-8", "surrogatepass"), basic),
        st.builds(lambda t: ("DPoP " + t).encode("utf-8", "surrogatepass"), token_parts),
        st.sampled_from([b"Bearer", b"Basic", b"bearer  x", b"Basic \xff\xfe", b"\xff", b""]),
        st.binary(max_size=60).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
    ]
    hostile = st.one_of(*forms)
    if valid is None:
        return hostile
    return mostly(st.builds(valid).flatmap(_one_of_or(b"")), hostile)


def _one_of_or(default: T) -> Callable[[list[T]], st.SearchStrategy[T]]:
    """For flatmap: one of a live list of values, or `default` while the list is empty."""
    return lambda values: st.sampled_from(values) if values else st.just(default)

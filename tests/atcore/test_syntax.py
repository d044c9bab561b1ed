from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from atcore.errors import InvalidSyntax
from atcore.syntax.atidentifier import is_valid_at_identifier, parse_at_identifier
from atcore.syntax.aturi import AtUri, is_valid_aturi, parse_aturi
from atcore.syntax.cidstring import is_valid_cid_string, parse_cid_string
from atcore.syntax.datetime import format_datetime, is_valid_datetime, now_iso, parse_datetime
from atcore.syntax.did import Did, is_valid_did, parse_did
from atcore.syntax.handle import INVALID_HANDLE, is_disallowed_tld, is_valid_handle, parse_handle
from atcore.syntax.integer import INT64_MAX, INT64_MIN, parse_integer
from atcore.syntax.language import is_valid_language, parse_language, parse_language_strict
from atcore.syntax.nsid import Nsid, authority, is_valid_nsid, name, parse_nsid
from atcore.syntax.recordkey import RecordKey, is_valid_record_key, parse_record_key
from atcore.syntax.tid import (
    MAX_CLOCK_ID,
    MAX_TIMESTAMP,
    Tid,
    TidClock,
    is_valid_tid,
    parse_tid,
    tid_from_timestamp,
    tid_timestamp,
)
from atcore.syntax.uri import is_valid_uri, parse_uri
from tests.vectors import INTEROP, REPO_FIXTURES

# Vector file prefix -> (parse function, is_valid function).
CHECKERS: dict[str, tuple[Callable[[str], object], Callable[[str], bool]]] = {
    "atidentifier": (parse_at_identifier, is_valid_at_identifier),
    "aturi": (parse_aturi, is_valid_aturi),
    "cid": (parse_cid_string, is_valid_cid_string),
    "datetime": (parse_datetime, is_valid_datetime),
    "did": (parse_did, is_valid_did),
    "handle": (parse_handle, is_valid_handle),
    "language": (parse_language, is_valid_language),
    "nsid": (parse_nsid, is_valid_nsid),
    "recordkey": (parse_record_key, is_valid_record_key),
    "tid": (parse_tid, is_valid_tid),
    "uri": (parse_uri, is_valid_uri),
}

# The interop-tests copy lists "JA" and "jaja" as syntax-invalid; the monorepo copy lists them
# as well-formed but parse-invalid. spec-lexicon.md requires a *well-formed* RFC 5646 tag, and
# by the RFC grammar both are well-formed (tags are case-insensitive; 4ALPHA is a language
# production), so the spec sides with the monorepo: for these lines we check the monorepo's
# reading (well-formed, rejected by the strict parse) instead of the interop one.
WELL_FORMED_BUT_INVALID_LANGUAGE = {
    ("interop-tests", "language_syntax_invalid.txt"): {"JA", "jaja"},
}

VECTOR_FILES = [
    *sorted((INTEROP / "syntax").glob("*.txt")),
    *sorted((REPO_FIXTURES / "interop-test-files/syntax").glob("*.txt")),
]


def vector_lines(path: Path) -> list[str]:
    # Whitespace is meaningful (some invalid values have leading or trailing spaces), so only
    # line endings are removed; empty lines and '#' lines are comments.
    lines = path.read_text(encoding="utf-8").split("\n")
    return [line.removesuffix("\r") for line in lines if line.strip("\r") and line[0] != "#"]


def vector_id(path: Path) -> str:
    copy = "interop-tests" if path.is_relative_to(INTEROP) else "monorepo"
    return f"{copy}/{path.name}"


def test_every_vector_file_is_covered() -> None:
    assert len(VECTOR_FILES) == 24 + 7
    for path in VECTOR_FILES:
        prefix, kind = path.stem.split("_", 1)
        assert prefix in CHECKERS, path
        assert kind in ("syntax_valid", "syntax_invalid", "parse_invalid"), path


@pytest.mark.parametrize("path", VECTOR_FILES, ids=vector_id)
def test_syntax_vectors(path: Path) -> None:
    prefix, kind = path.stem.split("_", 1)
    parse, is_valid = CHECKERS[prefix]
    copy = "interop-tests" if path.is_relative_to(INTEROP) else "monorepo"
    overridden = WELL_FORMED_BUT_INVALID_LANGUAGE.get((copy, path.name), set())
    lines = vector_lines(path)
    assert lines
    wrong = []
    for line in lines:
        if line in overridden or (prefix == "language" and kind == "parse_invalid"):
            ok = is_valid(line) and not _strict_language_accepts(line)
        elif kind == "syntax_valid":
            ok = is_valid(line) and _parses(parse, line)
            if prefix == "language":
                ok = ok and _strict_language_accepts(line)
        else:  # syntax_invalid, and datetime parse_invalid: parse_datetime is the strict parse
            ok = not is_valid(line) and not _parses(parse, line)
        if not ok:
            wrong.append(line[:100])
    assert wrong == []


def _parses(parse: Callable[[str], object], line: str) -> bool:
    try:
        parse(line)
    except InvalidSyntax:
        return False
    return True


def _strict_language_accepts(line: str) -> bool:
    return _parses(parse_language_strict, line)


# --- handles ---------------------------------------------------------------------------------


def test_handle_is_normalised_to_lower_case() -> None:
    assert parse_handle("XX.LCS.MIT.EDU") == "xx.lcs.mit.edu"
    assert parse_handle("BlueskyWeb.xyz") == "blueskyweb.xyz"
    assert parse_at_identifier("John.TEST") == "john.test"
    assert parse_at_identifier("did:method:VAL") == "did:method:VAL"  # DIDs keep their case


@pytest.mark.parametrize(
    "handle",
    ["laptop.local", "blah.arpa", "x.onion", "a.b.alt", "my.example", "x.internal", "Y.LOCALHOST"],
)
def test_reserved_tlds_are_parseable_but_disallowed(handle: str) -> None:
    assert is_valid_handle(handle)
    assert is_disallowed_tld(handle)
    assert is_disallowed_tld(handle, allow_test=True)


def test_invalid_and_test_tlds() -> None:
    assert is_disallowed_tld(INVALID_HANDLE)
    assert is_disallowed_tld("alice.test")
    assert not is_disallowed_tld("alice.test", allow_test=True)
    for ok in ("jay.bsky.social", "example.com", "local.example.org", "onion.xyz"):
        assert not is_disallowed_tld(ok)


def test_handle_error_messages() -> None:
    with pytest.raises(InvalidSyntax, match="invalid handle syntax"):
        parse_handle("john..test")
    with pytest.raises(InvalidSyntax, match="longer than 253"):
        parse_handle("a." * 127 + "com")
    with pytest.raises(InvalidSyntax, match="not a DID or a handle"):
        parse_at_identifier("@handle")


# --- NSIDs, DIDs, record keys ----------------------------------------------------------------


def test_nsid_authority_and_name() -> None:
    nsid = parse_nsid("com.atproto.sync.getRecord")
    assert authority(nsid) == "sync.atproto.com"
    assert name(nsid) == "getRecord"
    assert parse_nsid("COM.Example.fooBar") == "COM.Example.fooBar"  # never force-lowercased
    assert authority(Nsid("COM.Example.fooBar")) == "example.com"
    assert name(Nsid("COM.Example.fooBar")) == "fooBar"


def test_length_limits() -> None:
    assert is_valid_did("did:plc:" + "a" * 2040)
    assert not is_valid_did("did:plc:" + "a" * 2041)
    assert is_valid_record_key("o" * 512)
    assert not is_valid_record_key("o" * 513)
    with pytest.raises(InvalidSyntax, match="may not be"):
        parse_record_key("..")
    nsid = "com." + "a" * 63 + "." + "b" * 63 + "." + "c" * 63 + "." + "d" * 57 + "." + "N" * 63
    assert len(nsid) == 317 and is_valid_nsid(nsid)
    with pytest.raises(InvalidSyntax, match="longer than 317"):
        parse_nsid(nsid + "Y")


def test_non_ascii_look_alikes_are_rejected() -> None:
    # Full-width digits would slip through a \d regex; the Kelvin sign folds to 'k' under a
    # Unicode IGNORECASE regex.
    assert not is_valid_datetime("１９８５-04-12T23:20:50.123Z")
    assert not is_valid_language("\u212aa")
    assert not is_valid_tid("3jzfcijpj2z2\u0430")


# --- datetimes --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "2024-02-29T00:00:00Z",
        "2000-02-29T00:00:00Z",
        "0000-02-29T00:00:00Z",  # astronomical year 0 is a leap year
        "0000-01-01T01:00:00+01:00",  # exactly 0000-01-01T00:00:00Z
        "0000-01-01T00:00:00-05:00",
        "1985-04-12T23:59:59.999999999999+23:59",
    ],
)
def test_datetime_edge_cases_accepted(text: str) -> None:
    assert parse_datetime(text) == text


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("2023-02-29T00:00:00Z", "day"),
        ("1900-02-29T00:00:00Z", "day"),
        ("1985-04-31T00:00:00Z", "day"),
        ("1985-04-12T24:00:00Z", "time of day"),
        ("1985-04-12T23:59:60Z", "time of day"),
        ("1985-04-12T23:20:50+24:00", "offset"),
        ("1985-04-12T23:20:50-00:00", "-00:00"),
        ("0000-01-01T00:59:59.9+01:00", "before year 0"),
        ("1985-04-12T23:20:50." + "1" * 21 + "Z", "syntax"),
    ],
)
def test_datetime_edge_cases_rejected(text: str, why: str) -> None:
    with pytest.raises(InvalidSyntax, match=why):
        parse_datetime(text)


# --- language ---------------------------------------------------------------------------------


def test_language_strict_parse() -> None:
    for tag in ("ja", "pt-BR", "zh-hakka", "i-default", "X-fr-CH", "en-x-a-a"):
        assert parse_language_strict(tag) == tag
    with pytest.raises(InvalidSyntax, match="variant"):
        parse_language_strict("en-rozaj-ROZAJ")
    with pytest.raises(InvalidSyntax, match="singleton"):
        parse_language_strict("en-u-co-phonebk-U-ca-buddhist")
    with pytest.raises(InvalidSyntax, match="lower-case"):
        parse_language_strict("Ja-JP")
    with pytest.raises(InvalidSyntax, match="well-formed"):
        parse_language_strict("de-419-DE")
    assert not is_valid_language("en-" * 100 + "x")


# --- CIDs and URIs ----------------------------------------------------------------------------


def test_cid_string_rejects_cidv0_with_message() -> None:
    with pytest.raises(InvalidSyntax, match="CIDv0"):
        parse_cid_string("QmbWqxBEKC3P8tqsKc98xmWNzrzDtRLMiMPL8wBuTGsMnR")


def test_uri_bounds() -> None:
    assert is_valid_uri("https://example.com/" + "x" * 8172)
    assert not is_valid_uri("https://example.com/" + "x" * 8173)
    assert not is_valid_uri("https://example.com/caf\u00e9")


# --- AT-URIs ----------------------------------------------------------------------------------


def test_aturi_fields() -> None:
    uri = parse_aturi("at://did:plc:asdf123/com.atproto.feed.post/3jzfcijpj2z2a")
    assert uri == AtUri(
        Did("did:plc:asdf123"), Nsid("com.atproto.feed.post"), RecordKey("3jzfcijpj2z2a")
    )
    assert parse_aturi("at://user.bsky.social") == AtUri(parse_handle("user.bsky.social"))
    assert parse_aturi("at://did:plc:x/app.bsky.feed.post").rkey is None


def test_aturi_str_round_trips_every_valid_vector() -> None:
    for line in vector_lines(INTEROP / "syntax/aturi_syntax_valid.txt"):
        assert str(parse_aturi(line)) == line


def test_aturi_str_is_canonical() -> None:
    uri = parse_aturi("at://Alice.Example.COM/app.bsky.feed.post/Self")
    assert str(uri) == "at://alice.example.com/app.bsky.feed.post/Self"
    assert str(parse_aturi(str(uri))) == str(uri)
    assert str(AtUri(Did("did:plc:x"), Nsid("a.b.c"))) == "at://did:plc:x/a.b.c"


def test_aturi_errors_name_the_part() -> None:
    with pytest.raises(InvalidSyntax, match="NSID"):
        parse_aturi("at://did:plc:asdf123/com.atproto.feed_post")
    with pytest.raises(InvalidSyntax, match="record key"):
        parse_aturi("at://did:plc:asdf123/com.atproto.feed.post/a@b")
    with pytest.raises(InvalidSyntax, match="more than"):
        parse_aturi("at://did:plc:asdf123/com.atproto.feed.post/a/b")
    with pytest.raises(InvalidSyntax, match="needs a collection"):
        AtUri(Did("did:plc:x"), None, RecordKey("self"))


# --- TIDs -------------------------------------------------------------------------------------


def test_tid_encoding_known_values() -> None:
    assert tid_from_timestamp(0, 0) == "2222222222222"
    assert tid_timestamp(Tid("2222222222222")) == 0
    assert tid_from_timestamp(MAX_TIMESTAMP, MAX_CLOCK_ID) == "bzzzzzzzzzzzz"
    # The spec's example TID is from 2023.
    seconds = tid_timestamp(parse_tid("3jzfcijpj2z2a")) / 1e6
    assert time.gmtime(seconds).tm_year == 2023
    with pytest.raises(ValueError, match="timestamp"):
        tid_from_timestamp(MAX_TIMESTAMP + 1, 0)
    with pytest.raises(ValueError, match="clock id"):
        tid_from_timestamp(0, MAX_CLOCK_ID + 1)


@given(
    st.integers(0, MAX_TIMESTAMP),
    st.integers(0, MAX_CLOCK_ID),
    st.integers(0, MAX_TIMESTAMP),
    st.integers(0, MAX_CLOCK_ID),
)
def test_tid_round_trip_and_order(t1: int, c1: int, t2: int, c2: int) -> None:
    a, b = tid_from_timestamp(t1, c1), tid_from_timestamp(t2, c2)
    assert is_valid_tid(a) and tid_timestamp(a) == t1
    # String order is numeric order, which is what makes TIDs sortable.
    assert (a < b) == ((t1, c1) < (t2, c2))


def _scripted(times: list[int]) -> Callable[[], int]:
    values = iter(times)
    return lambda: next(values)


def test_tid_clock_survives_repeats_and_steps_back() -> None:
    clock = TidClock(_scripted([1000, 1000, 1000, 999, 500, 2000, 1999]), clock_id=7)
    tids = [clock.next() for _ in range(7)]
    assert [tid_timestamp(t) for t in tids] == [1000, 1001, 1002, 1003, 1004, 2000, 2001]
    assert tids == sorted(set(tids))


def test_tid_clock_observe_bumps_past_foreign_tid() -> None:
    clock = TidClock(_scripted([1000, 1001, 1002]), clock_id=0)
    seen = tid_from_timestamp(5000, MAX_CLOCK_ID)  # e.g. a repo rev from a faster clock
    clock.observe(seen)
    first = clock.next()
    assert first > seen and tid_timestamp(first) == 5001
    clock.observe(tid_from_timestamp(10, 0))  # older TIDs never move the clock back
    assert tid_timestamp(clock.next()) == 5002


def test_tid_clock_defaults() -> None:
    clock = TidClock()
    assert 0 <= clock.clock_id <= MAX_CLOCK_ID
    tid = clock.next()
    assert abs(tid_timestamp(tid) - time.time() * 1e6) < 60e6
    assert clock.next() > tid
    with pytest.raises(ValueError, match="clock id"):
        TidClock(clock_id=1024)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0", 0), ("42", 42), ("-7", -7), ("007", 7), (str(INT64_MAX), INT64_MAX)],
)
def test_integers_from_outside(text: str, expected: int) -> None:
    assert parse_integer(text) == expected


@pytest.mark.parametrize(
    ("text", "minimum", "maximum", "message"),
    [
        ("\u00b2", INT64_MIN, INT64_MAX, "must be an integer"),  # '²'.isdigit() is true
        ("\u0663", INT64_MIN, INT64_MAX, "must be an integer"),  # int('٣') is 3
        ("", INT64_MIN, INT64_MAX, "must be an integer"),
        ("-", INT64_MIN, INT64_MAX, "must be an integer"),
        (" 1", INT64_MIN, INT64_MAX, "must be an integer"),
        ("1_000", INT64_MIN, INT64_MAX, "must be an integer"),
        ("+1", INT64_MIN, INT64_MAX, "must be an integer"),
        (str(INT64_MAX + 1), INT64_MIN, INT64_MAX, "out of range"),
        ("9" * 5000, INT64_MIN, INT64_MAX, "out of range"),  # never converted
        ("-1", 0, INT64_MAX, "out of range"),
        ("65536", 1, 65535, "out of range"),
    ],
)
def test_bad_integers_say_why(text: str, minimum: int, maximum: int, message: str) -> None:
    with pytest.raises(InvalidSyntax, match=message):
        parse_integer(text, minimum, maximum)


def test_datetimes_are_written_in_utc_with_milliseconds() -> None:
    moment = datetime(2024, 5, 1, 12, 0, 0, 123_999, tzinfo=UTC)
    assert format_datetime(moment) == "2024-05-01T12:00:00.123Z"
    east = moment.astimezone(timezone(timedelta(hours=2)))
    assert format_datetime(east) == "2024-05-01T12:00:00.123Z"
    assert format_datetime(datetime(2024, 5, 1, tzinfo=UTC)) == "2024-05-01T00:00:00.000Z"
    written = now_iso()
    assert parse_datetime(written) == written and len(written) == 24

"""atcore.cbor_diagnose names what is wrong with hand-built non-canonical CBOR, and where;
atcore.cbor rejects every one of these inputs."""

from __future__ import annotations

import pytest

from atcore import cbor
from atcore.cbor_diagnose import diagnose
from atcore.errors import DecodeError


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


BAD = [
    # {"b": 1, "a": 1}: keys out of order
    (h("a2 6162 01 6161 01"), "map keys out of canonical order at $: 'b'"),
    # {"bb": 1, "a": 2}: the longer key first
    (h("a2 626262 01 6161 02"), "map keys out of canonical order at $: 'bb'"),
    # {"a": 1, "bb": {"c": 5}} with 5 written as 18 05
    (h("a2 6161 01 626262 a1 6163 1805"), "non-minimal integer (argument written in more bytes "),
    # {"a": "x"} with the text length 1 written as 78 01
    (
        h("a1 6161 7801 78"),
        "non-minimal length (argument written in more bytes than needed) at $.a",
    ),
    # {"a": [1, 2]} as an indefinite-length array
    (h("a1 6161 9f 01 02 ff"), "indefinite length at $.a (byte 3)"),
    # {"a": [1, 1.5]}: a half-precision float
    (h("a1 6161 82 01 f93e00"), "float 1.5 at $.a[1]"),
    # {"a": -1} with -1 written as 38 00
    (h("a1 6161 3800"), "non-minimal negative integer"),
    # {"a": tag 42 over h'00'}: an empty CID
    (h("a1 6161 d82a 4100"), "CID link at $.a is not bytes holding 0x00"),
    # {"a": tag 7 over 1}
    (h("a1 6161 c7 01"), "tag 7 at $.a"),
    # {1: 1}
    (h("a1 01 01"), "map key 1 at $ is not a string"),
    # {"a": undefined}
    (h("a1 6161 f7"), "simple value undefined at $.a"),
    # {"a": 1} then a stray byte
    (h("a1 6161 01 00"), "1 trailing bytes after the value"),
    # a map that ends early
    (h("a2 6161"), "not well-formed CBOR"),
]


@pytest.mark.parametrize(("data", "expected"), BAD)
def test_names_what_is_wrong_and_where(data: bytes, expected: str) -> None:
    with pytest.raises(DecodeError):
        cbor.decode(data)
    found = diagnose(data)
    assert found is not None and found.startswith(expected), found


def test_a_nested_non_minimal_integer_is_located() -> None:
    found = diagnose(h("a2 6161 01 626262 a1 6163 1805"))
    assert found == (
        "non-minimal integer (argument written in more bytes than needed) at $.bb.c (byte 10)"
    )


def test_canonical_dag_cbor_has_nothing_to_report() -> None:
    value = {"text": "hi", "n": -5, "list": [1, b"\x00" * 40, None, True], "nested": {"a": {}}}
    assert diagnose(cbor.encode(value)) is None

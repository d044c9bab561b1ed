from __future__ import annotations

import base64
import json

import cbrrr
import pytest
from hypothesis import given
from hypothesis import strategies as st

from atcore import cbor
from atcore.cid import CID, cid_for_cbor, cid_for_raw
from atcore.errors import DecodeError
from tests.vectors import INTEROP

MALFORMED = {
    "float64": "fb3ff8000000000000",
    "float16": "f93c00",
    "undefined": "f7",
    "indefinite array": "9f01ff",
    "indefinite map": "bf616101ff",
    "duplicate key": "a2616101616101",
    "keys out of order": "a2616201616101",
    "length-first order violated": "a262616101616201",
    "non-minimal int": "1801",
    "non-minimal length": "780161",
    "integer map key": "a10101",
    "foreign tag": "c101",
    "trailing bytes": "0101",
    "truncated": "a26161",
    "tag 42 without 0x00 prefix": "d82a4401711220",
    "tag 42 with CIDv0-ish bytes": "d82a4100",
    "tag 42 sha1 CID": "d82a5819000171111400000000000000000000000000000000000000",
    "tag 42 over a string": "d82a6161",
    "empty input": "",
}


@pytest.mark.parametrize("hex_bytes", MALFORMED.values(), ids=MALFORMED.keys())
def test_strict_decoder_rejects(hex_bytes: str) -> None:
    with pytest.raises(DecodeError):
        cbor.decode(bytes.fromhex(hex_bytes))


def test_depth_bound() -> None:
    nested = b"\x81" * (cbor.MAX_DEPTH + 1) + b"\x01"
    with pytest.raises(DecodeError, match="nesting"):
        cbor.decode(nested)
    assert cbor.decode(b"\x81" * cbor.MAX_DEPTH + b"\x01") is not None


def test_encoder_is_canonical_length_first() -> None:
    data = cbor.encode({"bb": 1, "a": 2, "ccc": 3, "ab": 4})
    assert list(cbor.decode(data)) == ["a", "ab", "bb", "ccc"]
    assert data == bytes.fromhex("a461610262616204626262016363636303")


def test_encoder_refuses_floats_and_bad_keys() -> None:
    with pytest.raises(DecodeError):
        cbor.encode({"a": 1.5})
    with pytest.raises(DecodeError):
        cbor.encode({1: "a"})


def test_cid_link_round_trip() -> None:
    link = cid_for_raw(b"blob")
    data = cbor.encode({"ref": link})
    assert cbor.decode(data)["ref"] == link
    assert isinstance(cbor.decode(data)["ref"], CID)


def test_interop_fixture_cbor_and_cid() -> None:
    fixtures = json.loads((INTEROP / "data-model" / "data-model-fixtures.json").read_text())
    for fixture in fixtures:
        raw = base64.b64decode(fixture["cbor_base64"] + "==")
        assert cid_for_cbor(raw).encode() == fixture["cid"]
        assert cbor.encode(cbor.decode(raw)) == raw


_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.text(max_size=20)
    | st.binary(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=30,
)


@given(_values)
def test_round_trip(value: object) -> None:
    data = cbor.encode(value)
    assert cbor.decode(data) == value
    assert cbor.encode(cbor.decode(data)) == data


def test_decode_prefix_returns_value_and_length() -> None:
    first, second = cbor.encode({"op": 1, "t": "#x"}), cbor.encode({"seq": 5})
    value, length = cbor.decode_prefix(first + second)
    assert value == {"op": 1, "t": "#x"} and length == len(first)
    assert cbor.decode_prefix(second) == ({"seq": 5}, len(second))


_PREFIX_CASES = {k: v for k, v in MALFORMED.items() if k not in ("trailing bytes", "empty input")}


@pytest.mark.parametrize("hex_bytes", _PREFIX_CASES.values(), ids=_PREFIX_CASES.keys())
def test_decode_prefix_is_as_strict(hex_bytes: str) -> None:
    with pytest.raises(DecodeError):
        cbor.decode_prefix(bytes.fromhex(hex_bytes) + b"\x01")
    with pytest.raises(DecodeError):
        cbor.decode_prefix(b"")


def test_decode_prefix_depth_bound() -> None:
    with pytest.raises(DecodeError, match="nesting"):
        cbor.decode_prefix(b"\x81\x81\x01\x00", max_depth=1)


# The decoder clears most inputs by scanning their bytes; bytes that only look like a float,
# a huge negative integer, a nesting level or a CID (inside strings and hashes) must not make
# it accept what the walk over the value would reject, nor reject what is valid.
_BLESSED_LOOKING = b"\xd8\x2aX\x25\x00\x01\x71\x12\x20" + bytes(32)
_LOOKALIKES = b"\xf9\xfa\xfb;\xff" + b"\x9b" * 200 + _BLESSED_LOOKING
_SHA1 = CID(bytes.fromhex("0171111400000000000000000000000000000000000000"))
_HIDDEN = {
    # cbrrr encodes what the data model forbids, so each case differs from a valid value by
    # exactly one violation.
    "float": cbrrr.encode_dag_cbor({"a": _LOOKALIKES, "b": 1.5}),
    "integer below -2**63": cbrrr.encode_dag_cbor({"a": _LOOKALIKES, "b": -(2**63) - 1}),
    "sha1 CID": cbrrr.encode_dag_cbor([_LOOKALIKES, _SHA1]),
    "CID nested too deep": b"\x81" * cbor.MAX_DEPTH + cbor.encode(cid_for_cbor(b"x")),
}


@pytest.mark.parametrize("data", _HIDDEN.values(), ids=_HIDDEN.keys())
def test_lookalike_bytes_do_not_hide_violations(data: bytes) -> None:
    with pytest.raises(DecodeError):
        cbor.decode(data)


def test_lookalike_bytes_alone_are_fine() -> None:
    value = {"a": _LOOKALIKES, "b": -(2**63), "c": [cid_for_cbor(b"x"), cid_for_raw(b"y")]}
    assert cbor.decode(cbor.encode(value)) == value
    assert cbor.decode(b"\x81" * (cbor.MAX_DEPTH - 1) + cbor.encode(cid_for_cbor(b"x")))


# Inputs above cbor._SCAN_MAX skip the scan: the check on the decoded value alone must catch
# each violation (ASCII padding, which the scan would clear, makes each one large).
_PAD = cbrrr.encode_dag_cbor("x" * 2 * cbor._SCAN_MAX)
_LARGE = {
    "float": b"\x82" + _PAD + b"\xf9\x3c\x00",
    "integer below -2**63": b"\x82" + _PAD + b"\x3b\x80" + bytes(7),
    "sha1 CID": b"\x82" + _PAD + cbrrr.encode_dag_cbor(_SHA1),
    "nested too deep": b"\x82" + _PAD + b"\x81" * cbor.MAX_DEPTH + b"\x01",
}


@pytest.mark.parametrize("data", _LARGE.values(), ids=_LARGE.keys())
def test_large_inputs_are_as_strict(data: bytes) -> None:
    assert len(data) > cbor._SCAN_MAX
    with pytest.raises(DecodeError):
        cbor.decode(data)


def test_large_valid_input_is_accepted() -> None:
    value = ["x" * 2 * cbor._SCAN_MAX, -(2**63), [[cid_for_cbor(b"x")]] * 3, 2**64 - 1]
    assert cbor.decode(cbor.encode(value)) == value

"""CIDv1 string and binary forms, dag-cbor and raw codecs (atcore.cid)."""

from __future__ import annotations

import json
import random

import pytest

from atcore import cbor
from atcore.cid import (
    CID,
    cid_for_cbor,
    cid_for_raw,
    cid_from_bytes,
    cid_text,
    is_valid_cid,
    parse_cid,
)
from atcore.datamodel import from_json
from atcore.errors import InvalidCid
from tests.vectors import INTEROP

FIXTURES = json.loads((INTEROP / "data-model" / "data-model-fixtures.json").read_text())
# The raw-codec CID of zero bytes, as every IPFS implementation computes it.
EMPTY_RAW = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"


@pytest.mark.parametrize("fixture", FIXTURES, ids=[f["cid"][-8:] for f in FIXTURES])
def test_dag_cbor_cid_string_and_binary_forms(fixture: dict[str, object]) -> None:
    cid = cid_for_cbor(cbor.encode(from_json(fixture["json"])))
    assert cid.encode() == fixture["cid"]
    assert parse_cid(fixture["cid"]) == cid == cid_from_bytes(bytes(cid))
    assert is_valid_cid(cid)


def test_raw_codec() -> None:
    cid = cid_for_raw(b"")
    assert cid.encode() == EMPTY_RAW and parse_cid(EMPTY_RAW) == cid
    assert cid_from_bytes(bytes(cid)) == cid and cid != cid_for_cbor(b"")
    assert is_valid_cid(cid)


@pytest.mark.parametrize(
    "text",
    [
        EMPTY_RAW.upper(),  # multibase 'B' is upper-case base32: not the atproto form
        "QmcRD4wkPPi6dig81r5sLj9Zm1gDCL4zgpEj9CfuRrGbzF",  # CIDv0
        EMPTY_RAW[:-1],
        EMPTY_RAW + "a",
        "b" + "1" * 58,  # '1' is not in the base32 alphabet
        "bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm"[:-2] + "!!",
    ],
)
def test_parse_cid_rejects(text: str) -> None:
    with pytest.raises(InvalidCid):
        parse_cid(text)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        bytes(cid_for_raw(b""))[:-1],  # digest cut short
        bytes([0x01, 0x70, 0x12, 0x20]) + bytes(32),  # dag-pb codec
        bytes([0x01, 0x71, 0x11, 0x14]) + bytes(32),  # sha1 multihash
        bytes([0x12, 0x20]) + bytes(34),  # CIDv0 binary
    ],
)
def test_cid_from_bytes_rejects(raw: bytes) -> None:
    with pytest.raises(InvalidCid):
        cid_from_bytes(raw)


def test_cid_text_is_the_multibase_base32_of_any_cid() -> None:
    rng = random.Random(7)
    cids = [cid_for_cbor(rng.randbytes(n)) for n in range(200)]
    cids += [cid_for_raw(rng.randbytes(n)) for n in range(50)]
    cids += [CID(b"\x01\x71\x12\x20" + bytes([b]) * 32) for b in (0, 0x55, 0xAA, 0xFF)]
    cids.append(CID(b"\x01\x71\x13\x40" + rng.randbytes(64)))  # sha2-512: not 36 bytes
    assert [cid_text(cid) for cid in cids] == [cid.encode() for cid in cids]

from __future__ import annotations

import base64
import json

import pytest

from atcore import cbor, datamodel
from atcore.cid import cid_for_cbor, parse_cid
from atcore.errors import DecodeError
from tests.vectors import INTEROP

DM = INTEROP / "data-model"
FIXTURES = json.loads((DM / "data-model-fixtures.json").read_text())
VALID = json.loads((DM / "data-model-valid.json").read_text())
INVALID = json.loads((DM / "data-model-invalid.json").read_text())


@pytest.mark.parametrize("fixture", FIXTURES, ids=[f["cid"][-8:] for f in FIXTURES])
def test_json_to_cbor_to_json(fixture: dict[str, object]) -> None:
    value = datamodel.from_json(fixture["json"])
    raw = cbor.encode(value)
    assert raw == base64.b64decode(str(fixture["cbor_base64"]) + "==")
    assert cid_for_cbor(raw).encode() == fixture["cid"]
    assert datamodel.to_json(cbor.decode(raw)) == fixture["json"]


@pytest.mark.parametrize("case", VALID, ids=[c["note"] for c in VALID])
def test_valid(case: dict[str, object]) -> None:
    value = datamodel.record_from_json(case["json"])
    assert cbor.decode(cbor.encode(value)) == value


@pytest.mark.parametrize("case", INVALID, ids=[c["note"] for c in INVALID])
def test_invalid(case: dict[str, object]) -> None:
    with pytest.raises(DecodeError):
        datamodel.record_from_json(case["json"])


def test_blob_refs_typed_and_legacy() -> None:
    typed = "bafkreiccldh766hwcnuxnf2wh6jgzepf2nlu2lvcllt63eww5p6chi4ity"
    legacy = "bafkreigks6arfsq3xxfpvqrrwonchxcnu6do76auprhhfomao6c273sixm"
    record = datamodel.from_json(
        {
            "embed": {
                "images": [
                    {
                        "image": {
                            "$type": "blob",
                            "ref": {"$link": typed},
                            "mimeType": "image/png",
                            "size": 3,
                        }
                    }
                ]
            },
            "avatar": {"cid": legacy, "mimeType": "image/jpeg"},
        }
    )
    assert sorted(c.encode() for c in datamodel.blob_refs(record)) == sorted([typed, legacy])
    assert parse_cid(typed) in datamodel.blob_refs(record)


@pytest.mark.parametrize(
    "text",
    [
        '"\\ud800"',  # a lone high surrogate
        '{"k\\udc00": 1}',  # a lone low surrogate in a map key
        '["ok", {"text": "\\ude00\\ud83d"}]',  # a pair in the wrong order
        '{"$bytes": "\\ud800"}',  # base64 must be ASCII
        "18446744073709551616",  # past 64 bits
        "-9223372036854775809",
    ],
)
def test_json_outside_the_data_model_is_refused(text: str) -> None:
    with pytest.raises(DecodeError):
        datamodel.from_json(json.loads(text))


def test_surrogate_pairs_and_int64_bounds_are_kept() -> None:
    parsed = json.loads(
        '{"e": "\\ud83d\\ude00", "max": 9223372036854775807, "min": -9223372036854775808}'
    )
    assert datamodel.from_json(parsed) == {"e": "\U0001f600", "max": 2**63 - 1, "min": -(2**63)}

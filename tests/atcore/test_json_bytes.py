"""atcore.xrpc.server.json_bytes: the bytes compact json.dumps (ensure_ascii off) would write."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from atcore.cid import cid_for_raw
from atcore.datamodel import json_default
from atcore.xrpc.server import json_bytes

ODD = '\x00\x01\x08\x09\x0a\x0c\x0d\x1f"\\/\x7f\x80\xa0é中\u2028\u2029\ufeff\uffff😀\U0010ffff'


def reference(value: Any) -> bytes:
    return json.dumps(
        value, default=json_default, ensure_ascii=False, separators=(",", ":")
    ).encode()


def data_model(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(7 if depth < 4 else 4)
    if kind == 0:
        return "".join(rng.choice(ODD + "abc ") for _ in range(rng.randrange(20)))
    if kind == 1:
        return rng.choice([0, -1, 7, 2**53, -(2**53), 2**63 - 1, -(2**63), True, False, None])
    if kind == 2:
        return rng.randbytes(rng.randrange(12))
    if kind == 3:
        return cid_for_raw(rng.randbytes(8))
    if kind in (4, 5):
        return {
            "".join(rng.choice(ODD) for _ in range(rng.randrange(4))): data_model(rng, depth + 1)
            for _ in range(rng.randrange(5))
        }
    return [data_model(rng, depth + 1) for _ in range(rng.randrange(5))]


def test_same_bytes_as_json_dumps() -> None:
    rng = random.Random(11)
    for _ in range(3000):
        value = data_model(rng)
        assert json_bytes(value) == reference(value)


@pytest.mark.parametrize("value", [{"n": 2**70}, {"n": -(2**64)}, {1: "integer key"}])
def test_what_orjson_refuses_is_dumped_as_before(value: Any) -> None:
    assert json_bytes(value) == reference(value)


def test_errors_are_unchanged() -> None:
    with pytest.raises(TypeError, match="not a data-model value"):
        json_bytes({"a": object()})
    with pytest.raises(UnicodeEncodeError):
        json_bytes({"a": "\ud800"})

from __future__ import annotations

import base64
import io
import json
import random
from collections.abc import AsyncIterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from atcore import cbor
from atcore.car import (
    CarLimits,
    aiter_car_blocks,
    iter_car,
    iter_car_blocks,
    read_car,
    read_car_raw,
    read_car_unverified,
    write_car,
)
from atcore.cid import CID, cid_for_cbor, cid_for_raw, parse_cid
from atcore.errors import InvalidCar
from tests.vectors import REPO_FIXTURES

FIXTURES = REPO_FIXTURES / "packages" / "repo" / "tests" / "car-file-fixtures.json"


def _b64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def _load() -> list[tuple[CID, list[tuple[CID, bytes]], bytes]]:
    return [
        (
            parse_cid(case["root"]),
            [(parse_cid(b["cid"]), _b64(b["bytes"])) for b in case["blocks"]],
            _b64(case["car"]),
        )
        for case in json.loads(FIXTURES.read_text())
    ]


VECTORS = _load()


def _blocks(n: int) -> list[tuple[CID, bytes]]:
    out = []
    for i in range(n):
        data = cbor.encode({"i": i, "pad": b"x" * (i * 7)})
        out.append((cid_for_cbor(data), data))
    out.append((cid_for_raw(b"a blob"), b"a blob"))
    return out


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    return bytes(out + bytes([n]))


def _section(payload: bytes) -> bytes:
    return _varint(len(payload)) + payload


@pytest.mark.parametrize("root,blocks,car", VECTORS)
def test_vector_round_trip(root: CID, blocks: list[tuple[CID, bytes]], car: bytes) -> None:
    assert write_car(root, blocks) == car
    assert b"".join(iter_car([root], iter(blocks))) == car
    parsed = read_car(car)
    assert parsed.roots == [root] and parsed.root == root
    assert list(parsed.blocks.items()) == blocks


def test_iter_car_batches_chunks() -> None:
    big = [(cid_for_raw(bytes([i]) * 30_000), bytes([i]) * 30_000) for i in range(10)]
    chunks = list(iter_car(big[0][0], big))
    assert 1 < len(chunks) < len(big)
    assert read_car(b"".join(chunks)).blocks == dict(big)


def test_truncation_at_every_offset() -> None:
    blocks = _blocks(3)
    car = write_car(blocks[0][0], blocks)
    boundaries = {len(write_car(blocks[0][0], blocks[:k])) for k in range(len(blocks) + 1)}
    for cut in range(len(car)):
        if cut in boundaries:
            parsed = read_car(car[:cut])
            assert list(parsed.blocks.items()) == blocks[: len(parsed.blocks)]
        else:
            with pytest.raises(InvalidCar):
                read_car(car[:cut])


def test_flipped_byte_names_the_block() -> None:
    blocks = _blocks(4)
    car = bytearray(write_car(blocks[0][0], blocks))
    cid, data = blocks[2]
    at = bytes(car).index(bytes(cid) + data) + len(bytes(cid)) + 3
    car[at] ^= 0x01
    with pytest.raises(InvalidCar, match=f"block 2 \\({cid.encode()}\\).*hash"):
        read_car(bytes(car))


def test_blocks_before_the_bad_one_are_yielded() -> None:
    blocks = _blocks(3)
    car = bytearray(write_car(blocks[0][0], blocks))
    car[-1] ^= 0xFF
    reader = iter_car_blocks(bytes(car))
    assert [next(reader) for _ in range(3)] == blocks[:3]
    with pytest.raises(InvalidCar, match="block 3"):
        next(reader)


HEADER = _section(cbor.encode({"version": 1, "roots": [cid_for_raw(b"r")]}))


@pytest.mark.parametrize(
    "car,reason",
    [
        (b"", "header"),
        (_section(cbor.encode({"version": 1, "roots": []})), "non-empty"),
        (_section(cbor.encode({"version": 2, "roots": [cid_for_raw(b"r")]})), "version"),
        (_section(cbor.encode({"version": True, "roots": [cid_for_raw(b"r")]})), "version"),
        (_section(cbor.encode({"roots": [cid_for_raw(b"r")]})), "exactly"),
        (_section(cbor.encode({"version": 1, "roots": [1]})), "CIDs"),
        (_section(cbor.encode([1])), "exactly"),
        (_section(b"\xa1\x61"), "DAG-CBOR"),
        (b"\x80" * 12, "varint too long"),
        (b"\x81\x00" + b"\x00", "non-minimal"),
        (b"\x00", "zero length"),
        (HEADER + b"\x00", "zero length"),
        (HEADER + b"\x05", "truncated"),
        (HEADER + _section(b"\x01\x70\x12\x20" + b"\x00" * 40), "block 0.*not a CIDv1"),
        (HEADER + _section(b"\x01\x71\x12\x20"), "block 0.*not a CIDv1"),
        (HEADER + _section(bytes(cid_for_raw(b"x")) + b"x") + b"junk", "block 1"),
    ],
)
def test_malformed(car: bytes, reason: str) -> None:
    with pytest.raises(InvalidCar, match=reason):
        read_car(car)


def test_duplicate_blocks_are_tolerated() -> None:
    blocks = _blocks(2)
    car = write_car(blocks[0][0], blocks + blocks[:1])
    assert list(read_car(car).blocks.items()) == blocks
    assert len(list(iter_car_blocks(car))) == len(blocks) + 1


def test_extra_roots_kept_in_order() -> None:
    blocks = _blocks(2)
    roots = [blocks[1][0], blocks[0][0]]
    assert read_car(write_car(roots, blocks)).roots == roots
    with pytest.raises(InvalidCar):
        write_car([], blocks)


@pytest.mark.parametrize(
    "limits,reason",
    [
        (CarLimits(max_blocks=2), "more than 2 blocks"),
        (CarLimits(max_block_size=20), "block 2 is 23 bytes, above the limit of 20"),
        (CarLimits(max_total_size=300), "larger than 300 bytes"),
        (CarLimits(max_header_size=10), "header is .* above the limit"),
    ],
)
def test_limits(limits: CarLimits, reason: str) -> None:
    blocks = _blocks(4)
    car = write_car(blocks[0][0], blocks)
    assert len(car) > 300
    with pytest.raises(InvalidCar, match=reason):
        read_car(car, limits)
    assert len(read_car(car, CarLimits()).blocks) == len(blocks)


def test_length_limit_fires_before_data_arrives() -> None:
    header_and_length = HEADER + _varint(10**9)
    with pytest.raises(InvalidCar, match="above the limit"):
        list(iter_car_blocks([header_and_length]))


def test_sources_file_and_chunks() -> None:
    blocks = _blocks(5)
    car = write_car(blocks[0][0], blocks)
    assert list(read_car(io.BytesIO(car)).blocks.items()) == blocks
    reader = iter_car_blocks(car[i : i + 3] for i in range(0, len(car), 3))
    assert reader.roots() == [blocks[0][0]]
    assert list(reader) == blocks
    assert list(reader) == []


async def _achunks(data: bytes, rng: random.Random) -> AsyncIterator[bytes]:
    pos = 0
    while pos < len(data):
        size = rng.randint(0, 40)
        yield data[pos : pos + size]
        pos += size


@pytest.mark.parametrize("seed", range(20))
async def test_async_reader_random_chunks(seed: int) -> None:
    blocks = _blocks(6)
    car = write_car(blocks[0][0], blocks)
    reader = aiter_car_blocks(_achunks(car, random.Random(seed)))
    assert await reader.roots() == [blocks[0][0]]
    assert [block async for block in reader] == blocks


async def test_async_reader_errors() -> None:
    blocks = _blocks(2)
    car = write_car(blocks[0][0], blocks)
    reader = aiter_car_blocks(_achunks(car[:-1], random.Random(1)))
    with pytest.raises(InvalidCar, match="truncated"):
        [block async for block in reader]
    reader = aiter_car_blocks(_achunks(b"", random.Random(1)))
    with pytest.raises(InvalidCar, match="header"):
        await reader.roots()


@given(
    st.lists(st.binary(max_size=300), min_size=1, max_size=8),
    st.lists(st.integers(min_value=1, max_value=64), min_size=1, max_size=20),
)
def test_round_trip(payloads: list[bytes], sizes: list[int]) -> None:
    blocks = [(cid_for_raw(p), p) for p in payloads]
    car = write_car(blocks[0][0], blocks)
    chunks, pos, i = [], 0, 0
    while pos < len(car):
        chunks.append(car[pos : pos + sizes[i % len(sizes)]])
        pos += sizes[i % len(sizes)]
        i += 1
    assert list(iter_car_blocks(chunks)) == blocks
    assert read_car(car).blocks == dict(blocks)


def _outcome(source: bytes | io.BytesIO, limits: CarLimits) -> object:
    try:
        parsed = read_car(source, limits)
    except InvalidCar as exc:
        return str(exc)
    return parsed.roots, list(parsed.blocks.items())


@pytest.mark.parametrize("limits", [CarLimits(), CarLimits(max_blocks=2, max_block_size=60)])
def test_in_memory_path_matches_the_stream_parser(limits: CarLimits) -> None:
    """read_car over bytes takes its own loop: every cut and every flipped byte of a CAR must
    give the same blocks or the same error as the streaming parser (fed from a file)."""
    blocks = _blocks(3) + _blocks(1)
    car = write_car(blocks[0][0], blocks)
    variants = [car[:cut] for cut in range(len(car) + 1)] + [car + b"\x00", car + b"\x01"]
    for at in range(len(car)):
        flipped = bytearray(car)
        flipped[at] ^= 0x80
        variants.append(bytes(flipped))
    for data in variants:
        assert _outcome(data, limits) == _outcome(io.BytesIO(data), limits)


def test_unverified_read_gives_the_blocks_without_hashing_them() -> None:
    """What read_car_raw gives for a good CAR; a block whose bytes no longer match its CID
    comes back as it is; a header that is not DAG-CBOR is not read."""
    blocks = _blocks(3)
    car = write_car(blocks[0][0], blocks)
    assert read_car_unverified(car, CarLimits()) == read_car_raw(car, CarLimits())[1]
    cid, data = blocks[1]
    flipped = car.replace(bytes(cid) + data, bytes(cid) + data[:-1] + b"\xff")
    with pytest.raises(InvalidCar, match="hash"):
        read_car_raw(flipped, CarLimits())
    assert read_car_unverified(flipped, CarLimits())[bytes(cid)] == data[:-1] + b"\xff"
    assert read_car_unverified(_section(b"\xff") + car[len(HEADER) :], CarLimits())


@pytest.mark.parametrize(
    "car,limits,reason",
    [
        (b"", CarLimits(), "header"),
        (b"\x80" * 12, CarLimits(), "varint too long"),
        (HEADER + b"\x00", CarLimits(), "zero length"),
        (HEADER + b"\x05", CarLimits(), "truncated"),
        (write_car(_blocks(1)[0][0], _blocks(3)), CarLimits(max_blocks=2), "more than 2 blocks"),
        (write_car(_blocks(1)[0][0], _blocks(3)), CarLimits(max_total_size=60), "above the limit"),
    ],
)
def test_unverified_read_keeps_the_framing_and_limits(
    car: bytes, limits: CarLimits, reason: str
) -> None:
    with pytest.raises(InvalidCar, match=reason):
        read_car_unverified(car, limits)

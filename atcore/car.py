"""CAR v1 files: writing and bounded, verifying streaming reads (spec-repository.md, CAR section).

A CAR is `varint(len) header` followed by `varint(len) cid-bytes block-bytes` sections; the header
is the DAG-CBOR map `{version: 1, roots: [CID, ...]}`. Every block read is checked against its
CID (CIDv1, sha2-256, dag-cbor or raw codec), and every size is bounded by `CarLimits`.

One push parser (`CarParser`: feed bytes, pull blocks) backs the three readers: `read_car` for
whole files, `iter_car_blocks` for sync sources and `aiter_car_blocks` for async byte streams
such as an HTTP request body.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO

from atcore import cbor
from atcore.cid import CID, DAG_CBOR, RAW
from atcore.errors import DecodeError, InvalidCar

__all__ = [
    "Car",
    "read_car_raw",
    "read_car_unverified",
    "CarBlocks",
    "AsyncCarBlocks",
    "CarLimits",
    "CarParser",
    "aiter_car_blocks",
    "iter_car",
    "iter_car_blocks",
    "read_car",
    "write_car",
]

_CID_LEN = 36
_PREFIXES = (bytes([0x01, DAG_CBOR, 0x12, 0x20]), bytes([0x01, RAW, 0x12, 0x20]))
_MAX_VARINT_BYTES = 9  # multiformats unsigned varints are capped at 63 bits
_sha256 = hashlib.sha256
_CHUNK = 1 << 20  # read size for files and slice size for in-memory input
_WRITE_CHUNK = 1 << 16  # iter_car batches small sections into chunks of about this size


@dataclass(frozen=True)
class CarLimits:
    """Bounds for an untrusted CAR. Defaults fit a full export of a very large account.

    max_block_size: 2 MiB, twice the largest record a PDS accepts; blobs are not in repo CARs.
    max_blocks: 2,000,000, about 1.5M records with their MST nodes (the largest known repos).
    max_total_size: 1 GiB of CAR bytes. max_header_size: 64 KiB, over 1,500 roots.
    Callers with a tighter bound (a firehose diff, an import quota) pass their own.
    """

    max_blocks: int = 2_000_000
    max_block_size: int = 2 * 1024 * 1024
    max_total_size: int = 1024 * 1024 * 1024
    max_header_size: int = 64 * 1024


@dataclass(frozen=True)
class Car:
    """A fully read CAR: header roots and verified blocks in file order (duplicates kept once)."""

    roots: list[CID]
    blocks: dict[CID, bytes]

    @property
    def root(self) -> CID:
        """The first root: by atproto convention the commit the file is about."""
        return self.roots[0]


def iter_car(roots: CID | Sequence[CID], blocks: Iterable[tuple[CID, bytes]]) -> Iterator[bytes]:
    """Stream a CAR as chunks of about 64 KiB, pulling blocks lazily (for HTTP responses)."""
    root_list = [roots] if isinstance(roots, CID) else list(roots)
    if not root_list:
        raise InvalidCar("a CAR needs at least one root")
    header = cbor.encode({"version": 1, "roots": root_list})
    pending = bytearray(_varint(len(header)) + header)
    for cid, data in blocks:
        raw = bytes(cid)
        pending += _varint(len(raw) + len(data))
        pending += raw
        pending += data
        if len(pending) >= _WRITE_CHUNK:
            yield bytes(pending)
            pending.clear()
    if pending:
        yield bytes(pending)


def write_car(roots: CID | Sequence[CID], blocks: Iterable[tuple[CID, bytes]]) -> bytes:
    """The whole CAR as one byte string."""
    return b"".join(iter_car(roots, blocks))


def read_car(source: bytes | BinaryIO, limits: CarLimits | None = None) -> Car:
    """Read and verify a whole CAR from bytes or a binary file."""
    limits = limits or CarLimits()
    if isinstance(source, bytes | bytearray | memoryview) and len(source) <= limits.max_total_size:
        roots, raw = read_car_raw(bytes(source), limits)
        return Car(roots=roots, blocks={CID(cid): block for cid, block in raw.items()})
    reader = iter_car_blocks(source, limits)
    blocks: dict[CID, bytes] = {}
    for cid, data in reader:
        blocks.setdefault(cid, data)
    return Car(roots=reader.roots(), blocks=blocks)


def iter_car_blocks(
    source: bytes | bytearray | memoryview | BinaryIO | Iterable[bytes],
    limits: CarLimits | None = None,
) -> CarBlocks:
    """Verified `(cid, bytes)` blocks as they arrive from bytes, a binary file or chunks."""
    return CarBlocks(_chunks(source), limits or CarLimits())


def aiter_car_blocks(
    chunks: AsyncIterable[bytes], limits: CarLimits | None = None
) -> AsyncCarBlocks:
    """Verified `(cid, bytes)` blocks from an async byte stream (`async for`; roots are awaited)."""
    return AsyncCarBlocks(chunks.__aiter__(), limits or CarLimits())


class CarParser:
    """Push parser: `feed` bytes, take complete blocks with `next_block`, then `finish`."""

    def __init__(self, limits: CarLimits) -> None:
        self.limits = limits
        self.roots: list[CID] | None = None
        self._buf = bytearray()
        self._pos = 0
        self._total = 0
        self._count = 0

    def feed(self, chunk: bytes | memoryview) -> None:
        self._total += len(chunk)
        if self._total > self.limits.max_total_size:
            raise InvalidCar(f"CAR is larger than {self.limits.max_total_size} bytes")
        if self._pos:
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += chunk

    def header(self) -> list[CID] | None:
        """The header roots, or None until enough bytes are fed."""
        if self.roots is None:
            section = self._section(self.limits.max_header_size, "header")
            if section is not None:
                self.roots = _parse_header(section)
        return self.roots

    def next_block(self) -> tuple[CID, bytes] | None:
        """The next verified block, or None until more bytes are fed (reads the header first)."""
        if self.header() is None:
            return None
        section = self._section(self.limits.max_block_size, f"block {self._count}", _CID_LEN)
        if section is None:
            return None
        index = self._count
        self._count += 1
        if self._count > self.limits.max_blocks:
            raise InvalidCar(f"CAR has more than {self.limits.max_blocks} blocks")
        return _verify_block(index, section)

    def finish(self) -> None:
        """Raise unless the input ended exactly after a complete header or block."""
        if self.roots is None:
            raise InvalidCar("CAR ended before its header was complete")
        if self._pos != len(self._buf):
            where = f"block {self._count}"
            raise InvalidCar(f"CAR truncated or has trailing garbage at {where}")

    def _section(self, limit: int, what: str, overhead: int = 0) -> bytes | None:
        """Consume one length-prefixed section (`overhead` + at most `limit` bytes) if buffered."""
        span = _span(self._buf, self._pos, limit, what, overhead)
        if span is None:
            return None
        start, self._pos = span
        return bytes(self._buf[start : self._pos])


def read_car_raw(data: bytes, limits: CarLimits) -> tuple[list[CID], dict[bytes, bytes]]:
    """A CAR already in memory, within `limits`: its roots and its verified blocks keyed by
    binary CID (what MemoryBlockStore keeps; no CID object per block). The parser's checks
    and errors, in one loop over `data` without its buffer copies and per-block calls."""
    start, end = _header_span(data, limits)
    return _parse_header(data[start:end]), _raw_blocks(data, end, limits, verify=True)


def read_car_unverified(data: bytes, limits: CarLimits) -> dict[bytes, bytes]:
    """The blocks of a CAR in memory keyed by binary CID, for a reader that trusts its source
    to have verified them (Jetstream trusting its relay, which checked the commit): the framing
    and `limits` of read_car_raw, without decoding the header or hashing a block, which is most
    of the cost of a read."""
    return _raw_blocks(data, _header_span(data, limits)[1], limits, verify=False)


def _header_span(data: bytes, limits: CarLimits) -> tuple[int, int]:
    if len(data) > limits.max_total_size:
        raise InvalidCar(f"CAR is {len(data)} bytes, above the limit of {limits.max_total_size}")
    span = _span(data, 0, limits.max_header_size, "header")
    if span is None:
        raise InvalidCar("CAR ended before its header was complete")
    return span


def _raw_blocks(data: bytes, pos: int, limits: CarLimits, verify: bool) -> dict[bytes, bytes]:
    """The block sections from `pos` to the end, each checked against its CID if `verify`."""
    blocks: dict[bytes, bytes] = {}
    count, end = 0, len(data)
    max_block, max_blocks = limits.max_block_size, limits.max_blocks
    while pos < end:
        # The common section lengths, one- and two-byte minimal varints, inline; anything else
        # (and every error) through _span.
        length, start = data[pos], pos + 1
        if length >= 0x80:
            second = data[start] if start < end else 0
            length = (length & 0x7F) | (second << 7) if 0 < second < 0x80 else 0
            start += 1
        if length and start + length <= end and length - _CID_LEN <= max_block:
            pos = start + length
        else:
            span = _span(data, pos, max_block, f"block {count}", _CID_LEN)
            if span is None:
                raise InvalidCar(f"CAR truncated or has trailing garbage at block {count}")
            start, pos = span
        if count >= max_blocks:
            raise InvalidCar(f"CAR has more than {max_blocks} blocks")
        cid = data[start : start + _CID_LEN]
        block = data[start + _CID_LEN : pos]
        if verify and not _block_ok(cid, block):
            raise _block_error(count, data[start:pos])
        blocks.setdefault(cid, block)
        count += 1
    return blocks


def _span(
    buf: bytes | bytearray, pos: int, limit: int, what: str, overhead: int = 0
) -> tuple[int, int] | None:
    """Where the length-prefixed section at `pos` (`overhead` + at most `limit` bytes) starts
    and ends, or None if `buf` ends before it does."""
    length = shift = 0
    for i in range(_MAX_VARINT_BYTES + 1):
        if pos + i >= len(buf):
            return None
        byte = buf[pos + i]
        if i == _MAX_VARINT_BYTES:
            raise InvalidCar(f"varint too long before {what}")
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            if i and not byte:
                raise InvalidCar(f"non-minimal varint before {what}")
            break
    start = pos + i + 1
    if length == 0:
        raise InvalidCar(f"{what} has zero length")
    if length - overhead > limit:
        raise InvalidCar(f"{what} is {length - overhead} bytes, above the limit of {limit}")
    if start + length > len(buf):
        return None
    return start, start + length


class CarBlocks(Iterator[tuple[CID, bytes]]):
    """Blocks of a CAR read from a chunk iterator; `roots()` reads the header if needed."""

    def __init__(self, chunks: Iterator[bytes | memoryview], limits: CarLimits) -> None:
        self._chunks = chunks
        self._parser = CarParser(limits)
        self._done = False

    def roots(self) -> list[CID]:
        while (roots := self._parser.header()) is None:
            self._pull()
        return roots

    def __next__(self) -> tuple[CID, bytes]:
        while (block := self._parser.next_block()) is None:
            if self._done:
                raise StopIteration
            self._pull()
        return block

    def _pull(self) -> None:
        chunk = next(self._chunks, None)
        if chunk is None:
            self._done = True
            self._parser.finish()
        else:
            self._parser.feed(chunk)


class AsyncCarBlocks(AsyncIterator[tuple[CID, bytes]]):
    """Blocks of a CAR read from async chunks; `await roots()` reads the header if needed."""

    def __init__(self, chunks: AsyncIterator[bytes], limits: CarLimits) -> None:
        self._chunks = chunks
        self._parser = CarParser(limits)
        self._done = False

    async def roots(self) -> list[CID]:
        while (roots := self._parser.header()) is None:
            await self._pull()
        return roots

    async def __anext__(self) -> tuple[CID, bytes]:
        while (block := self._parser.next_block()) is None:
            if self._done:
                raise StopAsyncIteration
            await self._pull()
        return block

    async def _pull(self) -> None:
        try:
            chunk = await self._chunks.__anext__()
        except StopAsyncIteration:
            self._done = True
            self._parser.finish()
        else:
            self._parser.feed(chunk)


def _chunks(
    source: bytes | bytearray | memoryview | BinaryIO | Iterable[bytes],
) -> Iterator[bytes | memoryview]:
    if isinstance(source, bytes | bytearray | memoryview):
        view = memoryview(source)
        for start in range(0, len(view), _CHUNK):
            yield view[start : start + _CHUNK]
    elif (read := getattr(source, "read", None)) is not None:
        while chunk := read(_CHUNK):
            yield chunk
    else:
        yield from source


def _parse_header(data: bytes) -> list[CID]:
    try:
        header = cbor.decode(data)
    except DecodeError as exc:
        raise InvalidCar(f"CAR header is not DAG-CBOR: {exc}") from exc
    if not isinstance(header, dict) or set(header) != {"version", "roots"}:
        raise InvalidCar("CAR header must be exactly {version, roots}")
    if header["version"] != 1 or isinstance(header["version"], bool):
        raise InvalidCar(f"unsupported CAR version {header['version']!r:.20}")
    roots = header["roots"]
    if not isinstance(roots, list) or not roots or not all(isinstance(r, CID) for r in roots):
        raise InvalidCar("CAR header roots must be a non-empty list of CIDs")
    return roots


def _verify_block(index: int, section: bytes) -> tuple[CID, bytes]:
    raw, data = section[:_CID_LEN], section[_CID_LEN:]
    if not _block_ok(raw, data):
        raise _block_error(index, section)
    return CID(raw), data


def _block_ok(raw: bytes, data: bytes) -> bool:
    """`raw` is a whole CIDv1 sha2-256 dag-cbor or raw CID, and the hash of `data`."""
    return len(raw) == _CID_LEN and raw[:4] in _PREFIXES and _sha256(data).digest() == raw[4:]


def _block_error(index: int, section: bytes) -> InvalidCar:
    """Why the block section at `index` fails verification (it must fail)."""
    raw = section[:_CID_LEN]
    if len(raw) < _CID_LEN or raw[:4] not in _PREFIXES:
        return InvalidCar(
            f"block {index} (CID bytes {section[:8].hex()}...): "
            "not a CIDv1 sha2-256 dag-cbor or raw CID"
        )
    return InvalidCar(f"block {index} ({CID(raw).encode()}): content does not match its hash")


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)

"""The BlockStore protocol: how CID-addressed blocks reach the pure core (STYLE.md #1)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol

from atcore.cid import CID
from atcore.errors import MissingBlock


class BlockStore(Protocol):
    def get(self, cid: CID) -> bytes:
        """The block's bytes; raises MissingBlock when absent."""

    def put(self, cid: CID, data: bytes) -> None: ...

    def has(self, cid: CID) -> bool: ...


class MemoryBlockStore:
    """A dict-backed BlockStore for tests, CAR files and in-flight commits.

    Keyed by the CID's bytes: a dict of a million CID objects made every full GC collection
    walk them all (CIDs are GC-tracked; bytes are not), and CID hashing runs in Python.
    """

    def __init__(self, blocks: Iterable[tuple[CID, bytes]] = ()) -> None:
        self._blocks: dict[bytes, bytes] = {cid.cid_bytes: data for cid, data in blocks}

    def get(self, cid: CID) -> bytes:
        try:
            return self._blocks[cid.cid_bytes]
        except KeyError:
            raise MissingBlock(cid) from None

    def put(self, cid: CID, data: bytes) -> None:
        self._blocks[cid.cid_bytes] = data

    def get_raw(self, cid_bytes: bytes) -> bytes:
        """get() for a caller holding the CID in binary form (the MST's hot path)."""
        try:
            return self._blocks[cid_bytes]
        except KeyError:
            raise MissingBlock(CID(cid_bytes)) from None

    def put_raw(self, cid_bytes: bytes, data: bytes) -> None:
        """put() for a caller holding the CID in binary form (the MST's hot path)."""
        self._blocks[cid_bytes] = data

    def has(self, cid: CID) -> bool:
        return cid.cid_bytes in self._blocks

    def __iter__(self) -> Iterator[tuple[CID, bytes]]:
        return ((CID(raw), data) for raw, data in self._blocks.items())

    @property
    def blocks(self) -> dict[CID, bytes]:
        """A copy of the blocks, keyed by CID."""
        return dict(self)

    def __len__(self) -> int:
        return len(self._blocks)


class OverlayBlockStore:
    """Writes go to an in-memory layer; reads fall through to a base store.

    Used to stage a commit's new blocks (and to learn exactly which blocks it touched) before
    anything reaches durable storage.
    """

    def __init__(self, base: BlockStore) -> None:
        self.base = base
        self.new = MemoryBlockStore()
        self.read: set[CID] = set()

    def get(self, cid: CID) -> bytes:
        self.read.add(cid)
        if self.new.has(cid):
            return self.new.get(cid)
        return self.base.get(cid)

    def put(self, cid: CID, data: bytes) -> None:
        self.new.put(cid, data)

    def put_raw(self, cid_bytes: bytes, data: bytes) -> None:
        """put() for a caller holding the CID in binary form (the MST's hot path)."""
        self.new.put_raw(cid_bytes, data)

    def has(self, cid: CID) -> bool:
        return self.new.has(cid) or self.base.has(cid)

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
    """A dict-backed BlockStore for tests, CAR files and in-flight commits."""

    def __init__(self, blocks: Iterable[tuple[CID, bytes]] = ()) -> None:
        self.blocks: dict[CID, bytes] = dict(blocks)

    def get(self, cid: CID) -> bytes:
        try:
            return self.blocks[cid]
        except KeyError:
            raise MissingBlock(cid) from None

    def put(self, cid: CID, data: bytes) -> None:
        self.blocks[cid] = data

    def has(self, cid: CID) -> bool:
        return cid in self.blocks

    def __iter__(self) -> Iterator[tuple[CID, bytes]]:
        return iter(self.blocks.items())

    def __len__(self) -> int:
        return len(self.blocks)


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

    def has(self, cid: CID) -> bool:
        return self.new.has(cid) or self.base.has(cid)

"""Reading hosted repos for the sync API: record proofs and CAR exports (spec-sync.md)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence

from atcore.blockstore import OverlayBlockStore
from atcore.car import iter_car, write_car
from atcore.cid import CID
from atcore.mst import tree
from atcore.mst.store import NodeStore
from atcore.repo import export_blocks, read_head
from pds.actor_store.sql import ActorSql, RootRow
from pds.actor_store.store import ActorStore

# CAR chunks (~64 KiB each) produced per worker-thread call while streaming an export.
CHUNKS_PER_CALL = 16
# Nodes decoded for one record proof: the path from the root, a few dozen at most.
_PROOF_CACHE = 256


class MissingBlocks(LookupError):
    """getBlocks asked for blocks the repo does not hold."""

    def __init__(self, cids: Sequence[CID]) -> None:
        super().__init__(", ".join(c.encode() for c in cids))
        self.cids = list(cids)


def record_proof(sql: ActorSql, collection: str, rkey: str) -> tuple[CID, bytes] | None:
    """CAR of the commit, the MST path proving `collection/rkey` present or absent, and the
    record when present; None when the repo has no commit."""
    root = sql.root()
    if root is None:
        return None
    tracker = OverlayBlockStore(sql)
    value = tree.get(NodeStore(tracker, _PROOF_CACHE), root.data, f"{collection}/{rkey}")
    blocks = [(root.cid, sql.get(root.cid))]
    blocks += [(cid, sql.get(cid)) for cid in sorted(tracker.read, key=bytes)]
    if value is not None:
        blocks.append((value, sql.get(value)))
    return root.cid, write_car(root.cid, blocks)


def blocks_car(sql: ActorSql, cids: Sequence[CID]) -> bytes | None:
    """CAR of exactly the requested blocks (rooted at the current commit); None for no repo."""
    root = sql.root()
    if root is None:
        return None
    found, missing = [], []
    for cid in dict.fromkeys(cids):
        if sql.has(cid):
            found.append((cid, sql.get(cid)))
        else:
            missing.append(cid)
    if missing:
        raise MissingBlocks(missing)
    return write_car(root.cid, found)


async def export_car(store: ActorStore, since: str | None) -> tuple[RootRow, AsyncIterator[bytes]]:
    """The repo as a CAR stream: every block in export order, or only blocks newer than `since`.

    The stream reads one snapshot, so writes during a long download cannot tear it.
    """
    snap = await store.snapshot()
    try:
        root = await snap.run(lambda sql: sql.root())
    except BaseException:
        snap.close()
        raise
    if root is None:
        snap.close()
        raise LookupError("repo has no commit")

    def chunks(sql: ActorSql) -> Iterator[bytes]:
        if since is None:
            blocks = export_blocks(sql, read_head(sql, root.cid))
        else:
            blocks = sql.blocks_since(since)
        return iter_car(root.cid, blocks)

    async def stream() -> AsyncIterator[bytes]:
        try:
            source = await snap.run(chunks)
            while True:
                batch = await snap.run(lambda _: _take(source, CHUNKS_PER_CALL))
                if not batch:
                    return
                for chunk in batch:
                    yield chunk
        finally:
            snap.close()

    return root, stream()


def _take(source: Iterator[bytes], n: int) -> list[bytes]:
    out = []
    for chunk in source:
        out.append(chunk)
        if len(out) >= n:
            break
    return out

"""A PDS's repo machinery (actor stores, sequencer, lexicons) on a temp dir, for repo tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from atcore import cbor
from atcore.blockstore import MemoryBlockStore
from atcore.car import read_car
from atcore.commit import decode_commit, verify_commit
from atcore.frames import CommitEvent, decode_frame
from atcore.keys import PrivateKey, PublicKey, generate_k256
from atcore.lexicon import Catalog
from atcore.mst import tree
from pds.actor_store import ActorStores
from pds.repo_writer import init_repo
from pds.sequencer import Sequencer

CATALOG = Catalog.load_builtin()


@dataclass
class RepoEnv:
    actors: ActorStores
    sequencer: Sequencer
    catalog: Catalog
    data_dir: Path

    async def new_account(self, did: str) -> PrivateKey:
        key = generate_k256()
        await self.actors.create(did, key)
        await init_repo(self, did)
        return key

    async def events(self, cursor: int = 0) -> list[object]:
        """Every event in the log after `cursor`, decoded."""
        out: list[object] = []
        if self.sequencer.head <= cursor:
            return out
        async for frame in self.sequencer.subscribe(cursor):
            event = decode_frame(frame)
            out.append(event)
            if getattr(event, "seq", 0) >= self.sequencer.head:
                break
        return out


@asynccontextmanager
async def repo_env(data_dir: Path) -> AsyncIterator[RepoEnv]:
    actors = ActorStores(data_dir / "actors")
    sequencer = Sequencer(data_dir, actors)
    await sequencer.start()
    try:
        yield RepoEnv(actors, sequencer, CATALOG, data_dir)
    finally:
        await sequencer.close()
        await actors.close()


def check_commit_event(event: CommitEvent, key: PublicKey) -> None:
    """What a sync 1.1 consumer checks: the signature, and inverting ops using only the blocks."""
    car = read_car(event.blocks)
    assert car.root == event.commit
    commit = decode_commit(car.blocks[event.commit])
    assert verify_commit(commit, key)
    assert commit.rev == event.rev and commit.did == event.repo
    store = MemoryBlockStore(car.blocks.items())
    for op in event.ops:
        assert tree.get(store, commit.data, op.path) == op.cid
        if op.cid is not None:
            assert cbor.decode(store.get(op.cid))  # the record itself travels with the commit
    if event.prev_data is None:
        assert event.since is None and not event.ops
        return
    inverse = [(op.path, op.prev) for op in reversed(event.ops)]
    assert tree.apply(store, commit.data, inverse) == event.prev_data

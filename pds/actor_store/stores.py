"""All accounts' stores: `<root>/<2-char hash prefix>/<did>/` with store.sqlite and the key.

The signing key lives in its own 0600 file next to the database, so a database copy (backups,
debugging) does not carry the account's secret along.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import weakref
from collections import OrderedDict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from atcore.keys import PrivateKey, private_key_from_hex
from atcore.syntax.did import parse_did
from atcore.syntax.tid import TidClock
from pds.actor_store.store import ActorStore
from pds.blobstore import BlobStore

T = TypeVar("T")

DB_NAME = "store.sqlite"
KEY_NAME = "signing.key"
# Open databases kept; each holds two connections (file descriptors) and a node cache.
MAX_OPEN = 256


class WriteQueue(list[T]):
    """A list that a weak mapping can hold (plain lists take no weak references)."""


class RepoMissing(LookupError):
    """No store exists for this DID (the API answers RepoNotFound)."""


class ActorStores:
    """Creates, opens (LRU-bounded), and destroys per-DID stores; owns the PDS's TID clock.

    `lock(did)` is the per-account write lock: writes to one repo serialise on it while other
    accounts proceed.
    """

    def __init__(
        self,
        root_dir: Path,
        blob_dir: Path | None = None,
        max_open: int = MAX_OPEN,
        workers: int = 4,
    ) -> None:
        self.root_dir = root_dir
        # PDS_BLOBSTORE_DISK_LOCATION; its default is `<data>/blocks`, next to `<data>/actors`.
        self.blobs = BlobStore(blob_dir or root_dir.parent / "blocks")
        self.clock = TidClock()
        self._max_open = max_open
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="actor-store")
        self._open: OrderedDict[str, ActorStore] = OrderedDict()
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        # Held by the callers waiting on them, so idle accounts keep no queue.
        self._queues: weakref.WeakValueDictionary[str, WriteQueue[Any]] = (
            weakref.WeakValueDictionary()
        )

    def directory(self, did: str) -> Path:
        parse_did(did)
        prefix = hashlib.sha256(did.encode()).hexdigest()[:2]
        return self.root_dir / prefix / did

    def lock(self, did: str) -> asyncio.Lock:
        lock = self._locks.get(did)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[did] = lock
        return lock

    async def create(self, did: str, signing_key: PrivateKey) -> None:
        """Make the store and key file of a new account (its repo is made by init_repo)."""
        folder = self.directory(did)
        if (folder / DB_NAME).exists():
            raise FileExistsError(f"an actor store for {did} already exists")
        await asyncio.get_running_loop().run_in_executor(
            self._pool, _write_new, folder, signing_key
        )
        await self._open_store(did, create=True)

    async def exists(self, did: str) -> bool:
        return did in self._open or (self.directory(did) / DB_NAME).exists()

    async def signing_key(self, did: str) -> PrivateKey:
        store = self._open.get(did)
        if store is not None and store.signing_key is not None:
            return store.signing_key
        path = self.directory(did) / KEY_NAME
        try:
            curve, _, text = path.read_text().strip().partition(":")
        except FileNotFoundError:
            raise RepoMissing(did) from None
        key = private_key_from_hex(curve, text)
        if store is not None:
            store.signing_key = key
        return key

    def write_queue(self, did: str) -> WriteQueue[Any]:
        """The account's write batches waiting for a group commit (see pds.repo_writer)."""
        queue = self._queues.get(did)
        if queue is None:
            queue = self._queues[did] = WriteQueue()
        return queue

    async def open(self, did: str) -> ActorStore:
        """The open store of `did`; raises RepoMissing when there is none."""
        return await self._open_store(did, create=False)

    async def _open_store(self, did: str, create: bool) -> ActorStore:
        store = self._open.get(did)
        if store is not None:
            self._open.move_to_end(did)
            return store
        path = self.directory(did) / DB_NAME
        if not create and not path.exists():
            raise RepoMissing(did)
        store = await asyncio.get_running_loop().run_in_executor(
            self._pool, ActorStore, did, path, self._pool
        )
        existing = self._open.get(did)
        if existing is not None:  # another task opened it while we waited
            store.close()
            return existing
        self._open[did] = store
        while len(self._open) > self._max_open:
            # Not closed here: a task may still be using it. Dropping the last reference
            # closes its connections; writes stay serialised by the per-DID lock meanwhile.
            self._open.popitem(last=False)
        return store

    async def destroy(self, did: str) -> None:
        """Delete the account's store and key (account deletion)."""
        async with self.lock(did):
            store = self._open.pop(did, None)
            if store is not None:
                store.close()
            folder = self.directory(did)
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._pool, shutil.rmtree, folder, True)
            await loop.run_in_executor(self._pool, shutil.rmtree, self.blobs.root / did, True)

    def dids(self) -> Iterator[str]:
        """Every DID with a store on disk (start-up recovery scans them)."""
        for prefix in sorted(self.root_dir.glob("??")):
            for folder in sorted(prefix.iterdir()):
                if (folder / DB_NAME).exists():
                    yield folder.name

    def list_dids(self, after: str | None, limit: int) -> list[str]:
        """Up to `limit` hosted DIDs in order, after `after` (listRepos paging)."""
        dids = sorted(did for did in self.dids() if after is None or did > after)
        return dids[:limit]

    async def close(self) -> None:
        while self._open:
            _, store = self._open.popitem()
            store.close()
        self._pool.shutdown(wait=True)


def _write_new(folder: Path, key: PrivateKey) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    key_path = folder / KEY_NAME
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(f"{key.curve}:{key.hex()}\n")
        out.flush()
        os.fsync(out.fileno())

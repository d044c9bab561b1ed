"""The collection index rows (relay.db.accounts, listReposByCollection) known to be on disk.

Nearly every commit writes to collections its repo has written to before; the log's writer
asks this cache which of a change's collections are new and inserts only those. It holds
what committed transactions wrote, for the DIDs that gained a collection most recently (the
oldest are dropped beyond `size`; their rows are then inserted again, a no-op). Only the
log's writer uses it, from its thread during a transaction and from the event loop after the
commit, never both at once.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

DEFAULT_SIZE = 100_000
_NONE: frozenset[str] = frozenset()


class CollectionCache:
    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        if size < 1:
            raise ValueError("size must be positive")
        self.size = size
        self._known: OrderedDict[str, frozenset[str]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._known)

    def known(self, did: str) -> frozenset[str]:
        """Collections `did` is indexed under on disk, as far as the cache knows."""
        return self._known.get(did, _NONE)

    def committed(self, did: str, collections: Iterable[str], *, replaced: bool) -> None:
        """A transaction that indexed `did` under `collections` committed; after a replace
        those are all of its collections."""
        known = frozenset(collections) if replaced else self.known(did).union(collections)
        self._known[did] = known
        self._known.move_to_end(did)
        while len(self._known) > self.size:
            self._known.popitem(last=False)

"""What the relay log's committed transactions left on disk, per DID, as far as its writer knows.

Nearly every commit is from an account whose row exists on the same host and writes to
collections the repo has written to before. The log's writer asks this cache so that it only
updates such an account's sync state (not its host, whose index entry would be rewritten) and
inserts only new collection index rows (relay.db.accounts). It holds what committed
transactions wrote, for the DIDs written most recently (the oldest are dropped beyond `size`:
their rows are then written in full again, as if new). Only the log's writer uses it, from its
thread during a transaction and from the event loop after the commit, never both at once.
Every change to an account's host or indexed collections goes through that writer.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

DEFAULT_SIZE = 100_000
_NONE: frozenset[str] = frozenset()


class WrittenCache:
    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        if size < 1:
            raise ValueError("size must be positive")
        self.size = size
        self._hosts: dict[str, int] = {}
        self._collections: dict[str, frozenset[str]] = {}
        self._order: OrderedDict[str, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._order)

    def host(self, did: str) -> int | None:
        """The host id of `did`'s account row on disk, if known."""
        return self._hosts.get(did)

    def collections(self, did: str) -> frozenset[str]:
        """Collections `did` is indexed under on disk, as far as the cache knows."""
        return self._collections.get(did, _NONE)

    def saved(self, did: str, host_id: int) -> None:
        """A committed transaction wrote `did`'s account row with `host_id`."""
        if self._hosts.get(did) != host_id:
            self._hosts[did] = host_id
            self._learned(did)

    def indexed(self, did: str, collections: Iterable[str], *, replaced: bool) -> None:
        """A committed transaction indexed `did` under `collections`; after a replace those
        are all of its collections."""
        known = frozenset(collections) if replaced else self.collections(did).union(collections)
        self._collections[did] = known
        self._learned(did)

    def _learned(self, did: str) -> None:
        self._order[did] = None
        self._order.move_to_end(did)
        while len(self._order) > self.size:
            oldest, _ = self._order.popitem(last=False)
            self._hosts.pop(oldest, None)
            self._collections.pop(oldest, None)

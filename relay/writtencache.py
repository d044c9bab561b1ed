"""What the relay log's committed transactions left on disk, per DID, as far as its writer knows.

Nearly every commit is from an account whose row exists on the same host and writes to
collections the repo has written to before. The log's writer asks this cache so that it only
updates such an account's sync state (not its host, whose index entry would be rewritten) and
inserts only new collection index rows (relay.db.accounts). It holds what committed
transactions wrote, for the DIDs it learned something new about most recently (the oldest are
dropped beyond `size`: their rows are then written in full again, as if new). Only the log's
writer uses it, from its thread during a transaction and from the event loop after the
commit, never both at once. Every change to an account's host or indexed collections goes
through that writer.
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from collections.abc import Iterable

DEFAULT_SIZE = 100_000
_NONE: frozenset[str] = frozenset()


class WrittenCache:
    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        if size < 1:
            raise ValueError("size must be positive")
        self.size = size
        # DID -> (host id or None, collections), the most recently learned last.
        self._rows: OrderedDict[str, tuple[int | None, frozenset[str]]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._rows)

    def host(self, did: str) -> int | None:
        """The host id of `did`'s account row on disk, if known."""
        row = self._rows.get(did)
        return None if row is None else row[0]

    def collections(self, did: str) -> frozenset[str]:
        """Collections `did` is indexed under on disk, as far as the cache knows."""
        row = self._rows.get(did)
        return _NONE if row is None else row[1]

    def saved(self, did: str, host_id: int) -> None:
        """A committed transaction wrote `did`'s account row with `host_id`."""
        row = self._rows.get(did)
        if row is None or row[0] != host_id:
            self._learn(did, host_id, _NONE if row is None else row[1])

    def indexed(self, did: str, collections: Iterable[str], *, replaced: bool) -> None:
        """A committed transaction indexed `did` under `collections`; after a replace those
        are all of its collections."""
        names = map(sys.intern, collections)  # one copy of each name, however many DIDs
        known = frozenset(names) if replaced else self.collections(did).union(names)
        self._learn(did, self.host(did), known)

    def _learn(self, did: str, host_id: int | None, collections: frozenset[str]) -> None:
        self._rows[did] = (host_id, collections)
        self._rows.move_to_end(did)
        while len(self._rows) > self.size:
            self._rows.popitem(last=False)

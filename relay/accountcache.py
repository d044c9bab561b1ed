"""The accounts ingest is working on, in memory, as they will be once queued changes commit.

relay.writer applies every queued change here at once (state, host, takedown), so the next
event of an account is checked against its previous event's outcome before that is durable:
a host's events flow through verification without a database round trip each. A miss loads
the row through the log's ordered writer (after every change queued before it); a change that
lands while a load is in flight makes the loader try again, so a load never resurrects a state
older than a queued change. Least recently used rows are dropped beyond `size`.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from relay.db.accounts import AccountRow
from relay.repostate import RepoState

DEFAULT_SIZE = 100_000


class AccountCache:
    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        if size < 1:
            raise ValueError("size must be positive")
        self.size = size
        self._rows: OrderedDict[str, AccountRow] = OrderedDict()
        self._loading: dict[str, bool] = {}  # did -> changed while loading
        self._loaded: dict[str, asyncio.Event] = {}

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, did: object) -> bool:
        """Whether `did`'s row is cached (a known account), without touching its recency."""
        return did in self._rows

    def loading(self, did: str) -> bool:
        """Whether a load of `did`'s row is in flight."""
        return did in self._loading

    async def get(self, did: str, load: Callable[[], Awaitable[AccountRow]]) -> AccountRow:
        """The cached row, else `load()`'s (which must see every change queued before it)."""
        while True:
            row = self._rows.get(did)
            if row is not None:
                self._rows.move_to_end(did)
                return row
            if did in self._loading:  # another caller is loading it
                await self._loaded[did].wait()
                continue
            self._loading[did] = False
            self._loaded[did] = asyncio.Event()
            try:
                row = await load()
            finally:
                changed = self._loading.pop(did)
                self._loaded.pop(did).set()
            if not changed:
                self._put(row)
                return row

    def update(
        self,
        did: str,
        *,
        host_id: int | None = None,
        state: RepoState | None = None,
        takedown: bool | None = None,
    ) -> None:
        """A change to `did` was queued: reflect it (or invalidate a load in flight)."""
        if did in self._loading:
            self._loading[did] = True
        row = self._rows.get(did)
        if row is None:
            return
        self._rows[did] = AccountRow(
            did,
            host_id or row.host_id,
            row.state if state is None else state,
            row.takedown if takedown is None else takedown,
            row.throttled,
        )

    def forget(self, did: str | None = None) -> None:
        """Drop one row (or all) changed behind the log's back, e.g. by an admin SQL update."""
        if did is None:
            self._rows.clear()
            for loading in self._loading:
                self._loading[loading] = True
        else:
            self._rows.pop(did, None)
            if did in self._loading:
                self._loading[did] = True

    def _put(self, row: AccountRow) -> None:
        self._rows[row.did] = row
        while len(self._rows) > self.size:
            self._rows.popitem(last=False)

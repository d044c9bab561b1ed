"""Recently read account rows kept in memory, so a request need not hop to the account database.

Every request on a repo looks its account up (status, handle, takedown); the rows change rarely
and only through `AccountStore`, which drops an account's entry around each change. Correctness
comes first: a read that was in flight while a change started never fills the cache (the
`generation` it began under is stale), so a takedown, deactivation, handle change or deletion is
seen by the very next request.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Final

from pds.accounts.account import Account

# Accounts kept (a few hundred bytes each); the least recently used beyond this are dropped.
MAX_CACHED: Final = 10_000


class AccountCache:
    """A bounded LRU of accounts by DID, with an index from handle to DID."""

    def __init__(self, size: int = MAX_CACHED) -> None:
        self._size = size
        self._by_did: OrderedDict[str, Account] = OrderedDict()
        self._did_of: OrderedDict[str, str] = OrderedDict()
        # Bumped by every change; a read may fill the cache only under the generation it began.
        self.generation = 0

    def by_did(self, did: str) -> Account | None:
        account = self._by_did.get(did)
        if account is not None:
            self._by_did.move_to_end(did)
        return account

    def by_handle(self, handle: str) -> Account | None:
        did = self._did_of.get(handle)
        account = None if did is None else self._by_did.get(did)
        # The index may point at an account whose handle has since changed: not a hit then.
        if account is None or account.handle != handle:
            return None
        self._by_did.move_to_end(account.did)
        self._did_of.move_to_end(handle)
        return account

    def fill(self, account: Account | None, generation: int) -> None:
        """Keep `account`, read under `generation`, unless something changed since."""
        if account is None or generation != self.generation:
            return
        self._by_did[account.did] = account
        self._by_did.move_to_end(account.did)
        self._did_of[account.handle] = account.did
        self._did_of.move_to_end(account.handle)
        while len(self._by_did) > self._size:
            self._by_did.popitem(last=False)
        while len(self._did_of) > self._size:
            self._did_of.popitem(last=False)

    def forget(self, did: str) -> None:
        """Drop the account (its handle entries stop matching) and fence off reads in flight."""
        self.generation += 1
        self._by_did.pop(did, None)

    def __len__(self) -> int:
        return len(self._by_did)

"""Per-repository sync state a relay keeps, and the outcome of checking one upstream event
(spec-sync.md, "Reliable Repository Synchronization" and "Message Validation Checklist")."""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import NamedTuple

from atcore.cid import CID

__all__ = [
    "ACTIVE",
    "DESYNCHRONIZED",
    "INACTIVE_STATUSES",
    "Reason",
    "Rejected",
    "RepoState",
    "Verdict",
    "account_status",
]

ACTIVE = "active"
# Active upstream, but our chain of verified commits broke: drop events until a resync.
DESYNCHRONIZED = "desynchronized"
# Hosting statuses an upstream may report for an inactive account (subscribeRepos #account).
INACTIVE_STATUSES = frozenset({"takendown", "suspended", "deleted", "deactivated", "throttled"})
# An inactive account whose upstream gave no status, or one we do not know.
_DEFAULT_INACTIVE = "deactivated"


class Reason(StrEnum):
    """Why an upstream event was not forwarded; each is a metrics label."""

    BAD_EVENT = "bad_event"  # a field has the wrong syntax (DID, TID, op action or path)
    BAD_CAR = "bad_car"  # blocks are not a valid CAR within bounds
    TOO_BIG = "too_big"  # more bytes, blocks or ops than a #commit may carry
    ROOT_NOT_COMMIT = "root_not_commit"  # the CAR's first root is not the event's commit
    BAD_COMMIT = "bad_commit"  # the commit block is not a strict v3 commit
    DID_MISMATCH = "did_mismatch"  # the commit's DID is not the event's
    REV_MISMATCH = "rev_mismatch"  # the commit's rev is not the event's
    NO_IDENTITY = "no_identity"  # the DID does not resolve, or has no key or PDS
    WRONG_PDS = "wrong_pds"  # the DID's PDS is not the host the event came from
    BAD_SIGNATURE = "bad_signature"  # the signature fails with the current key, even refreshed
    REV_NOT_NEWER = "rev_not_newer"  # rev is not above the last one accepted
    REV_IN_FUTURE = "rev_in_future"  # rev's timestamp is beyond the clock-drift allowance
    SINCE_MISMATCH = "since_mismatch"  # chain break: since is not the last accepted rev
    PREV_DATA_MISMATCH = "prev_data_mismatch"  # chain break: prevData is not our MST root
    MISSING_PREV_DATA = "missing_prev_data"  # legacy commit without prevData (strict mode)
    INVERSION_FAILED = "inversion_failed"  # ops do not invert to prevData with these blocks
    MISSING_BLOCK = "missing_block"  # an op's record block is not in the CAR
    BAD_RECORD = "bad_record"  # a record block is not a DAG-CBOR map
    INACTIVE = "inactive"  # the account is not active upstream
    DESYNCHRONIZED = "desynchronized"  # the repo awaits a resync; its events are held back
    BAD_MST = "bad_mst"  # a full repo's MST is not in canonical layout
    RESYNC_FAILED = "resync_failed"  # the full repo could not be fetched


# Reasons that mean the repo's chain of commits broke: the repo must be resynchronised.
CHAIN_BREAKS = frozenset({Reason.SINCE_MISMATCH, Reason.PREV_DATA_MISMATCH})


@dataclass(frozen=True, slots=True)
class RepoState:
    """What a relay remembers of one repository between events.

    rev, data (the MST root, which the next commit's prevData must match) and head (the signed
    commit's CID) are None until a commit or sync was accepted. status is "active",
    "desynchronized" or an upstream inactive status such as "deactivated".
    """

    did: str
    rev: str | None = None
    data: CID | None = None
    head: CID | None = None
    status: str = ACTIVE

    @property
    def active(self) -> bool:
        """Whether the account is active upstream (a desynchronized repo still is)."""
        return self.status in (ACTIVE, DESYNCHRONIZED)


class Verdict(NamedTuple):
    """The outcome for one event. `state` is what to persist whether or not it was accepted:
    a chain break rejects the event but marks the repo desynchronized. An event that is
    neither accepted nor rejected is `ignored`: it repeats what we hold (no reason). A named
    tuple, made once per event (a frozen dataclass's __init__ costs several times more)."""

    accepted: bool
    state: RepoState
    reason: Reason | None = None
    detail: str = ""
    # Accepted only because lenient mode skipped a check strict mode requires (counted).
    lenient: bool = False
    ignored: bool = False

    @property
    def desynchronized(self) -> bool:
        return self.state.status == DESYNCHRONIZED


class Rejected(Exception):
    """Raised by a check to reject the event being verified; carries the reason code."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def account_status(state: RepoState, active: bool, status: str | None) -> RepoState:
    """The state after an upstream #account event, which is authoritative for its host.

    An account becoming active keeps a pending resync (its chain is still broken) but otherwise
    becomes active whatever it was before, so it is never stuck inactive. Upstream statuses we
    do not know, or that only make sense for our own bookkeeping, count as deactivated.
    """
    if active:
        new = DESYNCHRONIZED if state.status == DESYNCHRONIZED else ACTIVE
    else:
        new = status if status in INACTIVE_STATUSES else _DEFAULT_INACTIVE
    return replace(state, status=new)

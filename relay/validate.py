"""Verify one upstream firehose event against the repo's last known state (spec-sync.md,
"Message Validation Checklist"; blog-relay-updates-sync-v1-1.md; indigo-relay-HACKING.md).

Checks run cheapest first: field syntax and rev order, the CAR and the commit block, then the
identity (the DID's PDS must be the host the event came from, the signature must verify with
its current key; either failure refreshes the DID document once before rejecting), then the
chain (since and prevData against our state; only an authenticated event can break it) and
finally MST inversion of the ops with the event's own blocks.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from atcore.blockstore import MemoryBlockStore
from atcore.car import CarLimits, read_car_raw
from atcore.cbor_diagnose import diagnose
from atcore.cid import CID
from atcore.commit import Commit, decode_commit
from atcore.commit import verify_commit as signature_ok
from atcore.errors import IdentityError, InvalidCar, InvalidCommit, InvalidMst, InvalidSyntax
from atcore.firehose_verify import COMMIT_LIMITS, MAX_OPS, SYNC_LIMITS
from atcore.frames import AccountEvent, CommitEvent, IdentityEvent, SyncEvent
from atcore.identity.diddoc import DidDocument
from atcore.keys import PublicKey
from atcore.mst.diff import RecordOp
from atcore.mst.invert import invert_ops
from atcore.mst.node import is_valid_key
from atcore.mst.store import NodeStore
from atcore.mst.tree import EMPTY_ROOT
from atcore.syntax.did import Did, parse_did
from atcore.syntax.tid import Tid, is_valid_tid, tid_timestamp
from relay.repostate import (
    ACTIVE,
    DESYNCHRONIZED,
    Reason,
    Rejected,
    RepoState,
    Verdict,
    account_status,
)

__all__ = [
    "CommitCheck",
    "FUTURE_REV_ALLOWANCE",
    "Resolver",
    "check_commit",
    "check_not_future",
    "check_signed_commit",
    "normalize_host",
    "verify_account",
    "verify_commit",
    "verify_identity",
    "verify_sync",
]

# "beyond a clock drift window of a few minutes" (spec-sync.md), in seconds.
FUTURE_REV_ALLOWANCE = 300.0
# Nodes decoded while inverting one commit: a few per op along its path.
_INVERT_CACHE = 2048
_ACTIONS = {"create": (True, False), "update": (True, True), "delete": (False, True)}
_LIMIT_WORDS = ("limit", "larger than", "more than")
_DEFAULT_PORTS = {"https": ":443", "http": ":80"}


class Resolver(Protocol):
    """What verification needs from atcore.identity.resolver.IdentityResolver."""

    async def resolve_did(self, did: str) -> DidDocument: ...

    async def refresh(self, did: str) -> DidDocument: ...

    def cached(self, did: str) -> DidDocument | None: ...


def normalize_host(value: str) -> str:
    """`host[:port]`, lower-cased, from a hostname or a service URL; default ports dropped."""
    scheme, sep, rest = value.strip().lower().partition("://")
    if not sep:
        scheme, rest = "https", scheme
    netloc = rest.split("/", 1)[0]
    default = _DEFAULT_PORTS.get(scheme)
    if default is not None and netloc.endswith(default):
        netloc = netloc[: -len(default)]
    return netloc


@dataclass(frozen=True, slots=True)
class CommitCheck:
    """What a #commit's own blocks say, whatever the repo's state: the costly part of
    verification, so it can run ahead of the state checks and in another process
    (relay.verifier). `problem` is the first fault of the CAR or commit block; `signed_by` the
    key (curve, compressed point) the signature verified with, None when unchecked or bad;
    `records` and `inversion` the faults of the ops' records and of their inversion."""

    commit: Commit | None = None
    problem: tuple[Reason, str] | None = None
    signed_by: tuple[str, bytes] | None = None
    records: tuple[Reason, str] | None = None
    inversion: tuple[Reason, str] | None = None

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # Workers send these back by the thousand: plain values pickle several times faster
        # than the dataclasses and CID objects.
        c = self.commit
        commit = None if c is None else (c.did, c.data.cid_bytes, c.rev, c.sig, _raw(c.prev))
        return _unpickle_check, (commit, self.problem, self.signed_by, self.records, self.inversion)


def _raw(cid: CID | None) -> bytes | None:
    return None if cid is None else cid.cid_bytes


_WireCommit = tuple[str, bytes, str, bytes, bytes | None]


def _unpickle_check(commit: _WireCommit | None, *rest: Any) -> CommitCheck:
    if commit is None:
        return CommitCheck(None, *rest)
    did, data, rev, sig, prev = commit
    built = Commit(Did(did), CID(data), Tid(rev), sig, None if prev is None else CID(prev))
    return CommitCheck(built, *rest)


def check_commit(event: CommitEvent, key: PublicKey | None = None) -> CommitCheck:
    """Check the CAR, the commit block, the signature (with `key`, when given), the records
    and the inversion of the ops; never raises for a bad event."""
    try:
        ops = _record_ops(event)
        blocks = _read_blocks(event.blocks, event.commit, COMMIT_LIMITS)
        commit = _commit_of(blocks, event.commit, event.repo, event.rev)
    except Rejected as exc:
        return CommitCheck(problem=(exc.reason, exc.detail))
    signed_by = None
    if key is not None and signature_ok(commit, key):
        signed_by = (key.curve, key.compressed())
    try:
        _check_records(event, blocks)
    except Rejected as exc:
        return CommitCheck(commit, None, signed_by, (exc.reason, exc.detail))
    inversion = None
    if ops is not None and (prev_data := _prev_data(event)) is not None:
        try:
            _check_inversion(blocks, commit.data, ops, prev_data)
        except Rejected as exc:
            inversion = (exc.reason, exc.detail)
    return CommitCheck(commit, None, signed_by, None, inversion)


def _prev_data(event: CommitEvent) -> CID | None:
    # A repo's first commit (no since) starts from the empty tree.
    return event.prev_data if event.since is not None else event.prev_data or EMPTY_ROOT


async def verify_commit(
    event: CommitEvent,
    state: RepoState | None,
    host: str,
    resolver: Resolver,
    *,
    lenient: bool = False,
    clock: Callable[[], float] = time.time,
    check: CommitCheck | None = None,
) -> Verdict:
    """Accept a #commit with the repo's new state, or reject it with a reason.

    `state` is None for a repo never seen before: the chain cannot be checked, but the event
    must still be internally consistent (its ops invert to its own prevData). `lenient`
    accepts legacy commits without prevData or op `prev` (the Verdict says so). `check` is
    `check_commit(event, key)` done beforehand (by relay.verifier); without it, it is done here.
    """
    current = state if state is not None else RepoState(event.repo)
    try:
        if current.status == DESYNCHRONIZED:
            raise Rejected(Reason.DESYNCHRONIZED, "repo awaits a resync")
        if not current.active:
            raise Rejected(Reason.INACTIVE, f"account is {current.status}")
        _check_syntax(event.repo, event.rev, event.since)
        if len(event.ops) > MAX_OPS:
            raise Rejected(Reason.TOO_BIG, f"{len(event.ops)} ops (limit {MAX_OPS})")
        _check_rev(event.rev, current, clock)
        ops = _record_ops(event)
        if check is None:
            check = check_commit(event)
        if check.problem is not None:
            raise Rejected(*check.problem)
        commit = check.commit
        assert commit is not None
        await _check_signature(commit, host, resolver, check.signed_by)
        new = RepoState(event.repo, event.rev, commit.data, event.commit, ACTIVE)
        chain_break = _chain_break(event, current)
        if chain_break is not None:
            return Verdict(False, _desync(current), chain_break[0], chain_break[1])
        if check.records is not None:
            raise Rejected(*check.records)
        prev_data = _prev_data(event)
        if ops is None or prev_data is None:
            if not lenient:
                if prev_data is None:
                    raise Rejected(Reason.MISSING_PREV_DATA, "commit has no prevData")
                raise Rejected(Reason.INVERSION_FAILED, "an update or delete op lacks prev")
            return Verdict(True, new, lenient=True)
        if check.inversion is not None:
            raise Rejected(*check.inversion)
        return Verdict(True, new)
    except Rejected as exc:
        return Verdict(False, current, exc.reason, exc.detail)


async def _check_signature(
    commit: Commit, host: str, resolver: Resolver, signed_by: tuple[str, bytes] | None
) -> None:
    """The fast path: the signature already verified with the DID's current key, and the DID
    is served by `host`; otherwise check_signed_commit (with its one refresh)."""
    if signed_by is not None:
        doc = await _resolve(resolver, commit.did, refresh=False)
        key = doc.signing_key
        if (
            key is not None
            and (key.curve, key.compressed()) == signed_by
            and _serving_problem(doc, host) is None
        ):
            return
    await check_signed_commit(commit, host, resolver)


async def verify_sync(
    event: SyncEvent,
    state: RepoState | None,
    host: str,
    resolver: Resolver,
    *,
    clock: Callable[[], float] = time.time,
) -> Verdict:
    """Accept a #sync (a signed commit with no diff) as the repo's new head, or reject it.

    A verified #sync resets the chain: a desynchronized repo becomes active from its commit.
    One that repeats what we hold (the same rev and commit: a PDS sends one right after an
    account's first commit) is ignored, as spec-sync.md says: neither accepted nor rejected.
    """
    current = state if state is not None else RepoState(event.did)
    try:
        if not current.active:
            raise Rejected(Reason.INACTIVE, f"account is {current.status}")
        _check_syntax(event.did, event.rev, None)
        blocks = _read_blocks(event.blocks, None, SYNC_LIMITS)
        head = blocks.roots[0]
        if current.rev == event.rev and current.head == head:
            return Verdict(False, current, ignored=True)
        _check_rev(event.rev, current, clock)
        commit = _commit_of(blocks, head, event.did, event.rev)
        await check_signed_commit(commit, host, resolver)
        return Verdict(True, RepoState(event.did, event.rev, commit.data, head, ACTIVE))
    except Rejected as exc:
        return Verdict(False, current, exc.reason, exc.detail)


async def verify_account(
    event: AccountEvent, state: RepoState | None, host: str, resolver: Resolver
) -> Verdict:
    """Apply an #account event if it comes from the account's own PDS (a host cannot
    deactivate accounts it does not serve)."""
    current = state if state is not None else RepoState(event.did)
    try:
        _check_syntax(event.did, None, None)
        await _serving_identity(event.did, host, resolver, refresh_first=False)
    except Rejected as exc:
        return Verdict(False, current, exc.reason, exc.detail)
    return Verdict(True, account_status(current, event.active, event.status))


async def verify_identity(
    event: IdentityEvent,
    state: RepoState | None,
    host: str,
    resolver: Resolver,
    *,
    fresh: Awaitable[DidDocument] | None = None,
) -> Verdict:
    """Refresh the DID document (the event says it may have changed), then accept the event
    only from the account's current PDS. `fresh` is a lookup started after the event was read
    (relay.ingest starts a new account's ahead of its lane): it stands for the refresh."""
    current = state if state is not None else RepoState(event.did)
    try:
        _check_syntax(event.did, None, None)
        await _serving_identity(event.did, host, resolver, refresh_first=True, fresh=fresh)
    except Rejected as exc:
        return Verdict(False, current, exc.reason, exc.detail)
    return Verdict(True, current)


async def check_signed_commit(commit: Commit, host: str, resolver: Resolver) -> None:
    """Raise Rejected unless `host` is the PDS of `commit.did` and the signature verifies with
    its current key; a stale DID document gets one refresh before either verdict."""
    did = commit.did
    doc = await _resolve(resolver, did, refresh=False)
    if _problem(doc, host, commit) is not None:
        doc = await _resolve(resolver, did, refresh=True)
        problem = _problem(doc, host, commit)
        if problem is not None:
            raise Rejected(*problem)


def _problem(doc: DidDocument, host: str, commit: Commit) -> tuple[Reason, str] | None:
    found = _serving_problem(doc, host)
    if found is not None:
        return found
    key = doc.signing_key
    assert key is not None  # _serving_problem checked it
    if not signature_ok(commit, key):
        return Reason.BAD_SIGNATURE, f"signature does not verify with {commit.did}'s key"
    return None


def _serving_problem(doc: DidDocument, host: str) -> tuple[Reason, str] | None:
    if doc.signing_key is None:
        return Reason.NO_IDENTITY, f"{doc.did} has no usable #atproto signing key"
    endpoint = doc.pds_endpoint
    if endpoint is None:
        return Reason.NO_IDENTITY, f"{doc.did} has no PDS service"
    if normalize_host(endpoint) != normalize_host(host):
        return Reason.WRONG_PDS, f"{doc.did} is hosted at {endpoint}, not {host}"
    return None


async def _serving_identity(
    did: str,
    host: str,
    resolver: Resolver,
    refresh_first: bool,
    fresh: Awaitable[DidDocument] | None = None,
) -> None:
    if fresh is not None:
        doc = await _looked_up(did, fresh)
    else:
        doc = await _resolve(resolver, did, refresh=refresh_first)
    problem = _serving_problem(doc, host)
    if problem is not None and not refresh_first:
        doc = await _resolve(resolver, did, refresh=True)
        problem = _serving_problem(doc, host)
    if problem is not None:
        raise Rejected(*problem)


async def _resolve(resolver: Resolver, did: str, refresh: bool) -> DidDocument:
    return await _looked_up(did, resolver.refresh(did) if refresh else resolver.resolve_did(did))


async def _looked_up(did: str, lookup: Awaitable[DidDocument]) -> DidDocument:
    try:
        return await lookup
    except (IdentityError, InvalidSyntax) as exc:
        raise Rejected(Reason.NO_IDENTITY, f"{did} does not resolve: {exc}") from exc


def _check_syntax(did: str, rev: str | None, since: str | None) -> None:
    try:
        parse_did(did)
    except InvalidSyntax as exc:
        raise Rejected(Reason.BAD_EVENT, str(exc)) from exc
    for name, value in (("rev", rev), ("since", since)):
        if value is not None and not is_valid_tid(value):
            raise Rejected(Reason.BAD_EVENT, f"{name} is not a TID: {value[:40]!r}")


def _check_rev(rev: str, state: RepoState, clock: Callable[[], float]) -> None:
    # TIDs of one alphabet and length sort as strings in timestamp order.
    if state.rev is not None and rev <= state.rev:
        raise Rejected(Reason.REV_NOT_NEWER, f"rev {rev} is not after {state.rev}")
    check_not_future(rev, clock)


def check_not_future(rev: str, clock: Callable[[], float]) -> None:
    """Raise Rejected when the TID `rev` is beyond the clock-drift allowance."""
    ahead = tid_timestamp(Tid(rev)) / 1e6 - clock()
    if ahead > FUTURE_REV_ALLOWANCE:
        raise Rejected(Reason.REV_IN_FUTURE, f"rev {rev} is {ahead:.0f} s in the future")


def _record_ops(event: CommitEvent) -> list[RecordOp] | None:
    """The ops as MST changes; None when some update or delete lacks `prev` (sync 1.0)."""
    ops: list[RecordOp] = []
    legacy = False
    for op in event.ops:
        shape = _ACTIONS.get(op.action)
        if shape is None:
            raise Rejected(Reason.BAD_EVENT, f"unknown op action {op.action[:20]!r}")
        if not is_valid_key(op.path):
            raise Rejected(Reason.BAD_EVENT, f"op path is not a repo path: {op.path[:80]!r}")
        has_cid, has_prev = shape
        if (op.cid is not None) != has_cid or (not has_prev and op.prev is not None):
            raise Rejected(Reason.BAD_EVENT, f"{op.action} op on {op.path} has wrong cid/prev")
        if has_prev and op.prev is None:
            legacy = True
        ops.append(RecordOp(op.path, op.prev, op.cid))
    return None if legacy else ops


class _Blocks(MemoryBlockStore):
    """The CAR's verified blocks (keyed by binary CID) and its header roots."""

    def __init__(self, roots: list[CID], blocks: dict[bytes, bytes]) -> None:
        super().__init__()
        self._blocks = blocks
        self.roots = roots


def _read_blocks(data: bytes, commit: CID | None, limits: CarLimits) -> _Blocks:
    if len(data) > limits.max_total_size:
        raise Rejected(Reason.TOO_BIG, f"blocks are {len(data)} bytes")
    try:
        roots, blocks = read_car_raw(data, limits)
    except InvalidCar as exc:
        # car.py words every bound it enforces with one of these phrases
        text = str(exc)
        reason = Reason.TOO_BIG if any(w in text for w in _LIMIT_WORDS) else Reason.BAD_CAR
        raise Rejected(reason, str(exc)) from exc
    if commit is not None and roots[0] != commit:
        raise Rejected(Reason.ROOT_NOT_COMMIT, "the CAR's first root is not the event's commit")
    return _Blocks(roots, blocks)


def _commit_of(blocks: _Blocks, cid: CID, did: str, rev: str) -> Commit:
    if not blocks.has(cid):
        raise Rejected(Reason.ROOT_NOT_COMMIT, f"commit block {cid.encode()} is not in the CAR")
    block = blocks.get(cid)
    try:
        commit = decode_commit(block)
    except InvalidCommit as exc:
        # A peer's encoder to fix: say what in its CBOR is not canonical, and where.
        why = diagnose(block)
        raise Rejected(Reason.BAD_COMMIT, str(exc) if why is None else f"{exc}: {why}") from exc
    if commit.did != did:
        raise Rejected(Reason.DID_MISMATCH, f"commit is signed for {commit.did}, event is {did}")
    if commit.rev != rev:
        raise Rejected(Reason.REV_MISMATCH, f"commit rev {commit.rev}, event rev {rev}")
    return commit


def _chain_break(event: CommitEvent, state: RepoState) -> tuple[Reason, str] | None:
    if state.rev is None:
        return None
    if event.since != state.rev:
        return Reason.SINCE_MISMATCH, f"since {event.since} but the last rev was {state.rev}"
    if event.prev_data is not None and event.prev_data != state.data:
        return Reason.PREV_DATA_MISMATCH, "prevData is not the last commit's MST root"
    return None


def _desync(state: RepoState) -> RepoState:
    return RepoState(state.did, state.rev, state.data, state.head, DESYNCHRONIZED)


def _check_records(event: CommitEvent, blocks: _Blocks) -> None:
    # Relays do not validate records against lexicons (spec-sync.md) and must not drop odd but
    # legal data; a record must still be present and be a DAG-CBOR map.
    for op in event.ops:
        if op.cid is None:
            continue
        if not blocks.has(op.cid):
            raise Rejected(Reason.MISSING_BLOCK, f"record {op.cid.encode()} is not in the CAR")
        data = blocks.get(op.cid)
        if not op.cid.is_cidv1_dag_cbor_sha256_32() or not 0xA0 <= data[0] <= 0xBB:
            raise Rejected(Reason.BAD_RECORD, f"record {op.path} is not a DAG-CBOR map")


def _check_inversion(blocks: _Blocks, data: CID, ops: list[RecordOp], prev_data: CID) -> None:
    try:
        previous = invert_ops(NodeStore(blocks, _INVERT_CACHE), data, ops)
    except (InvalidMst, KeyError) as exc:
        # KeyError is MissingBlock: the CAR lacks a node the inversion needs.
        raise Rejected(Reason.INVERSION_FAILED, f"ops do not invert: {exc!r:.200}") from exc
    if previous != prev_data:
        raise Rejected(Reason.INVERSION_FAILED, "ops invert to a root other than prevData")

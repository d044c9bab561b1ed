"""Resynchronise a desynchronized repo from its PDS's full export (spec-sync.md, "Reliable
Repository Synchronization"; com.atproto.sync.getRepo).

The CAR is streamed and verified block by block within `limits`; only the commit and the
blocks that can be MST nodes are kept in memory (records are kept as CIDs, to check that
every key's record was sent). Then the commit is checked like a #sync (DID, rev, current key),
the whole tree's layout is validated, and the relay's new state and the #sync it emits are
returned.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from atcore.blockstore import MemoryBlockStore
from atcore.car import CarLimits, aiter_car_blocks, write_car
from atcore.cid import CID
from atcore.commit import Commit, decode_commit
from atcore.errors import IdentityError, InvalidCar, InvalidCommit, InvalidMst, MissingBlock
from atcore.frames import SyncEvent
from atcore.mst import walk
from atcore.mst.store import NodeStore
from atcore.syntax.datetime import format_datetime
from atcore.xrpc.client import XrpcClient, XrpcClientError
from relay.repostate import ACTIVE, Reason, Rejected, RepoState
from relay.validate import Resolver, check_not_future, check_signed_commit

__all__ = ["RESYNC_LIMITS", "Resynced", "resync_repo"]

# Records are at most 1,000,000 bytes; the largest repos hold about 1.5M records.
RESYNC_LIMITS = CarLimits(
    max_blocks=4_000_000,
    max_block_size=1_000_000,
    max_total_size=2 * 1024 * 1024 * 1024,
    max_header_size=4096,
)
# An MST node is the map {e, l}: canonical DAG-CBOR writes its head as map(2), text(1) "e".
_NODE_PREFIX = b"\xa2\x61\x65"
_GET_REPO = "com.atproto.sync.getRepo"
# The whole export: the largest repos are a couple of GiB. The guarded client's own limit
# (atcore.identity.pinned, 10 s) bounds each connect and read.
RESYNC_TIMEOUT = 15 * 60.0


@dataclass(frozen=True)
class Resynced:
    """A verified full repo: the state to persist, the #sync to emit (seq 0 until the relay
    sequences it), the collections the repo has records in, and its record count."""

    state: RepoState
    event: SyncEvent
    collections: frozenset[str]
    records: int


async def resync_repo(
    did: str,
    state: RepoState | None,
    resolver: Resolver,
    http: httpx.AsyncClient,
    *,
    limits: CarLimits = RESYNC_LIMITS,
    timeout: float = RESYNC_TIMEOUT,
    clock: Callable[[], float] = time.time,
) -> Resynced:
    """Fetch `did`'s repo from its current PDS and verify all of it; raise Rejected if not.

    The PDS is named by the DID document, which its user controls: `http` must be a guarded
    client (atcore.identity.pinned), which in dev mode admits private addresses. A repo whose
    rev is older than the state's is refused: the PDS would be rolling the account back.
    """
    try:
        endpoint = (await resolver.resolve_did(did)).require_pds_endpoint()
    except (IdentityError, ValueError) as exc:
        raise Rejected(Reason.NO_IDENTITY, f"{did}: {exc}") from exc
    head, blocks, records = await _fetch(http, endpoint, did, limits, timeout)
    commit = _commit(blocks, head, did, state, clock)
    await check_signed_commit(commit, endpoint, resolver)
    collections, count = _check_tree(blocks, commit.data, records)
    event = SyncEvent(0, did, write_car(head, [(head, blocks.get(head))]), commit.rev, _now(clock))
    new = RepoState(did, commit.rev, commit.data, head, ACTIVE)
    return Resynced(new, event, frozenset(collections), count)


async def _fetch(
    http: httpx.AsyncClient, endpoint: str, did: str, limits: CarLimits, timeout: float
) -> tuple[CID, MemoryBlockStore, set[bytes]]:
    blocks = MemoryBlockStore()
    records: set[bytes] = set()
    pds = XrpcClient(endpoint, http, max_response=limits.max_total_size, timeout=timeout)
    try:
        async with pds.query_stream(_GET_REPO, {"did": did}) as answer:
            reader = aiter_car_blocks(answer.chunks, limits)
            roots = await reader.roots()
            async for cid, data in reader:
                if cid == roots[0] or data.startswith(_NODE_PREFIX):
                    blocks.put(cid, data)
                else:
                    records.add(cid.cid_bytes)
    except InvalidCar as exc:
        raise Rejected(Reason.BAD_CAR, f"getRepo CAR: {exc}") from exc
    except XrpcClientError as exc:
        if 200 <= exc.status < 300:  # the CAR outgrew limits.max_total_size
            raise Rejected(Reason.BAD_CAR, f"getRepo CAR: {exc.message}") from exc
        raise Rejected(Reason.RESYNC_FAILED, f"getRepo from {endpoint}: {exc}") from exc
    except IdentityError as exc:  # the guard refused the host
        raise Rejected(Reason.RESYNC_FAILED, f"getRepo from {endpoint}: {exc!r}") from exc
    return roots[0], blocks, records


def _commit(
    blocks: MemoryBlockStore,
    head: CID,
    did: str,
    state: RepoState | None,
    clock: Callable[[], float],
) -> Commit:
    if not blocks.has(head):
        raise Rejected(Reason.ROOT_NOT_COMMIT, "the CAR's root block is missing")
    try:
        commit = decode_commit(blocks.get(head))
    except InvalidCommit as exc:
        raise Rejected(Reason.BAD_COMMIT, str(exc)) from exc
    if commit.did != did:
        raise Rejected(Reason.DID_MISMATCH, f"getRepo of {did} returned {commit.did}'s commit")
    if state is not None and state.rev is not None and commit.rev < state.rev:
        raise Rejected(Reason.REV_NOT_NEWER, f"repo rev {commit.rev} is before {state.rev}")
    check_not_future(commit.rev, clock)
    return commit


def _check_tree(blocks: MemoryBlockStore, data: CID, records: set[bytes]) -> tuple[set[str], int]:
    nodes = NodeStore(blocks)
    try:
        walk.validate_tree(nodes, data)
        collections: set[str] = set()
        count = 0
        for key, value in walk.walk(nodes, data):
            if value.cid_bytes not in records and not blocks.has(value):
                raise Rejected(Reason.MISSING_BLOCK, f"record {key} is not in the CAR")
            collections.add(key.partition("/")[0])
            count += 1
    except MissingBlock as exc:
        raise Rejected(Reason.MISSING_BLOCK, f"MST node missing: {exc}") from exc
    except InvalidMst as exc:
        raise Rejected(Reason.BAD_MST, f"invalid MST: {exc}") from exc
    return collections, count


def _now(clock: Callable[[], float]) -> str:
    return format_datetime(datetime.fromtimestamp(clock(), UTC))

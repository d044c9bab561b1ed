"""What a firehose consumer checks of a relay's #commit before acting on it (spec-sync.md,
"Firehose consumers"; spec-repository.md, "Commit Objects").

Always: the CAR's framing within the event's limits, at most 200 ops, and every created or
updated record in the CAR. Unless the relay is trusted (JETSTREAM_TRUST_RELAY,
FEEDGEN_TRUST_RELAY, BSKY_TRUST_RELAY), also: the CAR's blocks hash to their CIDs, its root is
the event's commit, the commit block names the event's DID and rev, the signature verifies
with the DID's current key (its document refreshed once before giving up), every op agrees with
the signed tree, and the ops undone on that tree give `prevData` (when the commit carries it),
which proves the event lists every change the commit made. A trusted relay checked all of that
before sending the event; hashing every block again would be most of a trusting consumer's
cost per event. Used by jetstream, feedgen and the appview.
"""

from __future__ import annotations

from typing import Final, Protocol

from atcore.blockstore import MemoryBlockStore
from atcore.car import CarLimits, read_car_raw, read_car_unverified
from atcore.cid import CID
from atcore.commit import Commit, decode_commit, verify_commit
from atcore.errors import IdentityError, InvalidCar, InvalidCommit, InvalidMst, InvalidSyntax
from atcore.frames import CommitEvent, SyncEvent
from atcore.identity.diddoc import DidDocument
from atcore.keys import PublicKey
from atcore.mst import tree
from atcore.mst.diff import RecordOp
from atcore.mst.invert import invert_ops
from atcore.mst.store import as_node_store
from atcore.mst.tree import EMPTY_ROOT

__all__ = [
    "COMMIT_LIMITS",
    "MAX_OPS",
    "SYNC_LIMITS",
    "Unverified",
    "WrongKey",
    "check_signature",
    "check_sync",
    "checked_blocks",
    "commit_blocks",
    "trusted_blocks",
]

# subscribeRepos #commit: blocks at most 2,000,000 bytes, each record at most 1,000,000, at
# most 200 ops. A block section is at least 37 bytes, so the byte cap bounds the count too; the
# explicit cap keeps a CAR of tiny blocks from costing 54k hashes. The relay checks the same.
COMMIT_LIMITS: Final = CarLimits(
    max_blocks=10_000, max_block_size=1_000_000, max_total_size=2_000_000, max_header_size=1024
)
# A #sync carries only its commit block (at most 10,000 bytes).
SYNC_LIMITS: Final = CarLimits(
    max_blocks=8, max_block_size=10_000, max_total_size=10_000, max_header_size=1024
)
MAX_OPS: Final = 200


class Unverified(Exception):
    """The event fails a check; it is dropped, not emitted."""


class WrongKey(Unverified):
    """The signature does not verify with the key given (it may have rotated)."""


class DidResolver(Protocol):
    async def resolve_did(self, did: str) -> DidDocument: ...

    async def refresh(self, did: str) -> DidDocument: ...


async def commit_blocks(event: CommitEvent, resolver: DidResolver | None) -> MemoryBlockStore:
    """The #commit's blocks once its checks pass; `resolver` None trusts the relay for the
    signature and the proof."""
    if resolver is None:
        return trusted_blocks(event)
    commit, blocks = _read_commit(event)
    await check_signature(commit, resolver)
    _check_proof(event, commit, blocks)
    return blocks


def checked_blocks(event: CommitEvent, key: PublicKey | None) -> MemoryBlockStore:
    """commit_blocks with the DID's signing key at hand (worker processes): WrongKey when the
    signature does not verify with `key` (the caller then refreshes the DID's document), `key`
    None trusts the relay."""
    if key is None:
        return trusted_blocks(event)
    commit, blocks = _read_commit(event)
    if not verify_commit(commit, key):
        raise WrongKey(f"the signature does not verify with {commit.did}'s cached key")
    _check_proof(event, commit, blocks)
    return blocks


def trusted_blocks(event: CommitEvent) -> MemoryBlockStore:
    """The #commit's blocks as a trusted relay sent them: the CAR's framing and limits and the
    ops' records present, no block hashed and the commit block not read."""
    _check_op_count(event)
    try:
        blocks = _CarBlocks(read_car_unverified(event.blocks, COMMIT_LIMITS))
    except InvalidCar as exc:
        raise Unverified(f"bad CAR: {exc}") from exc
    _check_records_present(event, blocks)
    return blocks


def _read_commit(event: CommitEvent) -> tuple[Commit, MemoryBlockStore]:
    _check_op_count(event)
    commit, raw = _signed_commit(event.blocks, COMMIT_LIMITS, event.repo, event.rev, event.commit)
    blocks = _CarBlocks(raw)
    _check_records_present(event, blocks)
    return commit, blocks


def _check_op_count(event: CommitEvent) -> None:
    if len(event.ops) > MAX_OPS:
        raise Unverified(f"{len(event.ops)} ops (at most {MAX_OPS})")


def _check_records_present(event: CommitEvent, blocks: MemoryBlockStore) -> None:
    for op in event.ops:
        if op.cid is not None and not blocks.has(op.cid):
            raise Unverified(f"record {op.path} is not in the CAR")


async def check_sync(event: SyncEvent, resolver: DidResolver | None) -> None:
    """A #sync's CAR holds its commit, for its DID and rev, signed (unless trusting)."""
    commit, _ = _signed_commit(event.blocks, SYNC_LIMITS, event.did, event.rev, None)
    if resolver is not None:
        await check_signature(commit, resolver)


def _signed_commit(
    car: bytes, limits: CarLimits, did: str, rev: str, root: CID | None
) -> tuple[Commit, dict[bytes, bytes]]:
    """The commit block a CAR is rooted at (`root`, when the event names it), checked against
    the event's DID and rev, and the CAR's blocks."""
    try:
        roots, raw = read_car_raw(car, limits)
    except InvalidCar as exc:
        raise Unverified(f"bad CAR: {exc}") from exc
    if not roots or (root is not None and roots[0] != root) or roots[0].cid_bytes not in raw:
        raise Unverified("the CAR's root is not the event's commit")
    try:
        commit = decode_commit(raw[roots[0].cid_bytes])
    except InvalidCommit as exc:
        raise Unverified(str(exc)) from exc
    if commit.did != did or commit.rev != rev:
        raise Unverified("the commit block's did or rev differs from the event's")
    return commit, raw


class _CarBlocks(MemoryBlockStore):
    """The CAR's blocks as read (verified unless the relay is trusted), keyed by binary CID."""

    def __init__(self, raw: dict[bytes, bytes]) -> None:
        super().__init__()
        self._blocks = raw


async def check_signature(commit: Commit, resolver: DidResolver) -> None:
    """The commit is signed with its DID's current key (the document refreshed once)."""
    for lookup in (resolver.resolve_did, resolver.refresh):
        try:
            doc = await lookup(commit.did)
        except (IdentityError, InvalidSyntax) as exc:
            raise Unverified(f"{commit.did} does not resolve: {exc}") from exc
        if doc.signing_key is not None and verify_commit(commit, doc.signing_key):
            return
    raise Unverified(f"the signature does not verify with {commit.did}'s key")


def _check_proof(event: CommitEvent, commit: Commit, blocks: MemoryBlockStore) -> None:
    ops = [RecordOp(op.path, op.prev, op.cid) for op in event.ops]
    prev_data = event.prev_data if event.since is not None else event.prev_data or EMPTY_ROOT
    # A sync 1.0 commit (an update or delete without `prev`) cannot be undone.
    complete = all(op.prev is not None for op in event.ops if op.action != "create")
    try:
        if prev_data is not None and complete:
            if invert_ops(blocks, commit.data, ops) != prev_data:
                raise Unverified("the ops undone do not give prevData")
            return
        nodes = as_node_store(blocks)
        for op in ops:
            if tree.get(nodes, commit.data, op.key) != op.new:
                raise Unverified(f"op on {op.key} does not match the signed tree")
    except (InvalidMst, KeyError) as exc:
        raise Unverified(f"the ops do not match the signed tree: {exc!r:.200}") from exc

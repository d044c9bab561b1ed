"""Proofs are minimal: every pair of subsets of a seven-key, three-level tree, against a slow
obvious statement of what sync 1.1 asks a #commit to carry (spec-sync.md; the official
commit-proof fixtures, checked exactly in test_mst.py)."""

from __future__ import annotations

import itertools
import random

import pytest

from atcore.blockstore import MemoryBlockStore
from atcore.cid import CID, cid_for_cbor
from atcore.mst import diff, invert, proof, tree, walk
from atcore.mst.diff import RecordOp
from atcore.mst.node import decode_node, key_height
from atcore.mst.store import NodeStore

# Heights 0, 1, 0, 2, 0, 1, 2: three levels, keys of every height on both sides of others.
KEYS = ["k/00", "k/12", "k/20", "k/39", "k/44", "k/48", "k/74"]
OLD, NEW = cid_for_cbor(b"\x01"), cid_for_cbor(b"\x02")

Ranges = dict[CID, tuple[int, str | None, str | None]]


def _ranges(store: NodeStore, root: CID) -> Ranges:
    """Every node of the tree with its height and the open key range its subtree covers."""
    out: Ranges = {}
    top = max((key_height(k) for k in _keys(store, root)), default=0)
    pending: list[tuple[CID, int, str | None, str | None]] = [(root, top, None, None)]
    while pending:
        cid, height, lo, hi = pending.pop()
        out[cid] = (height, lo, hi)
        node = decode_node(store.get(cid))
        keys = [e[0].decode() for e in node.entries]
        links = [node.left, *(e[2] for e in node.entries)]
        bounds = [lo, *keys, hi]
        for i, link in enumerate(links):
            if link is not None:
                pending.append((link, height - 1, bounds[i], bounds[i + 1]))
    return out


def _keys(store: NodeStore, root: CID) -> list[str]:
    return [k for k, _ in walk.walk(store, root)]


def _covering(ranges: Ranges, key: str, floor: int) -> set[CID]:
    """The root (the one node whose range is unbounded on both sides), and the nodes at height
    `floor` or above whose range holds `key`."""
    return {
        cid
        for cid, (height, lo, hi) in ranges.items()
        if lo is hi is None
        or (height >= floor and (lo is None or lo < key) and (hi is None or key < hi))
    }


def _oracle(
    store: NodeStore, root: CID, ops: list[RecordOp]
) -> tuple[set[CID], dict[str, set[CID]]]:
    """The minimal proof, stated plainly: each key's presence or absence is shown by the nodes
    at or above its height whose range holds it; a create also needs its neighbours' inclusion
    proofs; a delete, to be re-inserted, every node whose range holds it, down to the bottom."""
    ranges = _ranges(store, root)
    present = _keys(store, root)
    paths = {op.key: _covering(ranges, op.key, key_height(op.key)) for op in ops}
    needed: set[CID] = set()
    for op in ops:
        needed |= paths[op.key]
        if op.new is None:
            needed |= _covering(ranges, op.key, 0)
        elif op.old is None:
            at = present.index(op.key)
            for near in present[max(at - 1, 0) : at + 2]:
                needed |= _covering(ranges, near, key_height(near))
    return needed, paths


class _Reads:
    """A BlockStore noting which blocks inversion reads."""

    def __init__(self, blocks: MemoryBlockStore) -> None:
        self.blocks = blocks
        self.read: set[CID] = set()

    def get(self, cid: CID) -> bytes:
        self.read.add(cid)
        return self.blocks.get(cid)

    def put(self, cid: CID, data: bytes) -> None:
        self.blocks.put(cid, data)

    def has(self, cid: CID) -> bool:
        return self.blocks.has(cid)


@pytest.mark.slow
def test_proofs_are_minimal_for_every_pair_of_subsets() -> None:
    """For every ordered pair (old, new) of subsets, with the keys both hold updated in half of
    the pairs: proof_nodes of each op's key and inductive_proof_nodes equal the oracle; the
    proof alone lets invert_ops recover the old root, in the ops' order and reversed; and
    undoing the ops in any order (all of them up to three ops, a sample beyond) reads no block
    outside the proof."""
    store = NodeStore(MemoryBlockStore())
    subsets = [s for n in range(len(KEYS) + 1) for s in itertools.combinations(KEYS, n)]
    rng = random.Random(3)
    pairs = 0
    for old_keys, new_keys in itertools.product(subsets, subsets):
        update = rng.random() < 0.5
        old = tree.build(store, [(k, OLD) for k in old_keys])
        new = tree.build(store, [(k, NEW if update and k in old_keys else OLD) for k in new_keys])
        ops = diff.diff(store, old, new).record_ops
        if not ops:
            continue
        pairs += 1
        expected, paths = _oracle(store, new, ops)
        for op in ops:
            assert proof.proof_nodes(store, new, op.key) == paths[op.key], (old_keys, new_keys)
        blocks = proof.inductive_proof_nodes(store, new, ops)
        assert blocks == expected, (old_keys, new_keys, ops)
        only = MemoryBlockStore((c, store.get(c)) for c in blocks)
        for order in (ops, ops[::-1]):
            assert invert.invert_ops(only, new, order) == old
        orders = (
            itertools.permutations(ops)
            if len(ops) <= 3
            else (rng.sample(ops, len(ops)) for _ in range(3))
        )
        for order in orders:
            reads = _Reads(MemoryBlockStore(store.blocks))  # type: ignore[attr-defined]
            assert invert.invert_ops(NodeStore(reads), new, list(order)) == old
            assert reads.read <= blocks, (old_keys, new_keys, order)
    assert pairs > 16_000


def test_exclusion_proof_stops_above_a_lower_root() -> None:
    """The issue's example: k/39 (height 2) deleted from a tree whose root is now at height 1;
    the root alone proves it absent, though the search path goes on below."""
    store = NodeStore(MemoryBlockStore())
    assert (key_height("k/39"), key_height("k/48"), key_height("k/00")) == (2, 1, 0)
    new = tree.build(store, [("k/00", OLD), ("k/48", OLD)])
    assert proof.proof_nodes(store, new, "k/39") == {new}
    only = NodeStore(MemoryBlockStore([(new, store.get(new))]))
    assert only.root(new.cid_bytes)[0] == 1
    # Re-inserting it splits the subtree below, so the inductive proof holds that too.
    ops = [RecordOp("k/39", OLD, None)]
    assert len(proof.inductive_proof_nodes(store, new, ops)) == 2

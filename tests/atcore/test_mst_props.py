"""MST oracle and property tests: a slow obvious tree builder, random edits, diffs, inversion."""

from __future__ import annotations

import hashlib
import itertools
from typing import Any

import cbrrr
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atcore.blockstore import MemoryBlockStore
from atcore.cid import CID, cid_for_cbor
from atcore.mst import diff, invert, proof, tree, walk
from atcore.mst.diff import RecordOp
from atcore.mst.store import NodeStore
from tests.vectors import INTEROP

# Keys of known heights 0..5 (the vector file names each key's height in its second char).
EXAMPLE_KEYS = (INTEROP / "mst" / "example_keys.txt").read_text().split()
VALUES = [cid_for_cbor(bytes([i])) for i in range(4)]


def oracle_root(mapping: dict[str, CID]) -> CID:
    """The canonical root straight from the definition, with cbrrr encoding plain dicts."""
    keys = sorted(mapping)

    def height(key: str) -> int:
        digest = hashlib.sha256(key.encode()).digest()
        bits = "".join(f"{b:08b}" for b in digest)
        return (len(bits) - len(bits.lstrip("0"))) // 2

    def node(subset: list[str], level: int) -> CID | None:
        if not subset:
            return None
        own = [k for k in subset if height(k) == level]
        groups: list[list[str]] = [[]]
        for k in subset:
            if height(k) == level:
                groups.append([])
            else:
                groups[-1].append(k)
        entries: list[dict[str, Any]] = []
        prev = b""
        for k, group in zip(own, groups[1:], strict=True):
            raw = k.encode()
            p = len(
                list(itertools.takewhile(lambda ab: ab[0] == ab[1], zip(prev, raw, strict=False)))
            )
            entries.append({"k": raw[p:], "p": p, "t": node(group, level - 1), "v": mapping[k]})
            prev = raw
        data = cbrrr.encode_dag_cbor({"e": entries, "l": node(groups[0], level - 1)})
        return cid_for_cbor(data)

    if not keys:
        return cid_for_cbor(cbrrr.encode_dag_cbor({"e": [], "l": None}))
    root = node(keys, max(height(k) for k in keys))
    assert root is not None
    return root


def _store() -> NodeStore:
    return NodeStore(MemoryBlockStore())


# A pool mixing every height, with shared prefixes of many lengths.
POOL = [k for k in EXAMPLE_KEYS if k[0] in "ABCDEFGH"] + ["A0/1", "A0/10", "A0/100", "B1/x"]


def test_oracle_exhaustive_small_subsets() -> None:
    pool = [k for k in EXAMPLE_KEYS if k[0] in "ABC" and k[1] in "0124"]  # 12 keys
    assert len(pool) == 12
    store = _store()
    full = {k: VALUES[0] for k in pool}
    full_root = tree.build(store, full.items())
    for r in range(len(pool) + 1):
        for n, subset in enumerate(itertools.combinations(pool, r)):
            if r not in (0, 1, 2, 11, 12) and n % 7:
                continue  # every subset of the extreme sizes, a seventh of the rest
            mapping = {k: VALUES[0] for k in subset}
            expected = oracle_root(mapping)
            assert tree.build(store, mapping.items()) == expected
            root = tree.empty_root(store)
            for k in subset[::-1]:
                root = tree.put(store, root, k, VALUES[0])
            assert root == expected
            root = full_root
            for k in pool:
                if k not in mapping:
                    root = tree.delete(store, root, k)
            assert root == expected


_edits = st.lists(
    st.tuples(st.sampled_from(POOL), st.none() | st.sampled_from(VALUES)), max_size=60
)


@given(_edits)
@settings(max_examples=150, deadline=None)
def test_random_edits_match_build_and_oracle(edits: list[tuple[str, CID | None]]) -> None:
    store = _store()
    root = tree.empty_root(store)
    model: dict[str, CID] = {}
    for key, value in edits:
        if value is None:
            if key in model:
                root = tree.delete(store, root, key)
                del model[key]
        else:
            root = tree.put(store, root, key, value)
            model[key] = value
    assert root == tree.build(_store(), model.items()) == oracle_root(model)
    assert walk.validate_tree(store, root) == len(model)
    assert list(walk.walk(store, root)) == sorted(model.items())
    for key in POOL[::5]:
        assert tree.get(store, root, key) == model.get(key)


_mappings = st.dictionaries(st.sampled_from(POOL), st.sampled_from(VALUES), max_size=40)


@given(_mappings, _mappings)
@settings(max_examples=150, deadline=None)
def test_diff_ops_turn_a_into_b(a: dict[str, CID], b: dict[str, CID]) -> None:
    store = _store()
    root_a = tree.build(store, a.items())
    root_b = tree.build(store, b.items())
    d = diff.diff(store, root_a, root_b)
    assert [op.key for op in d.record_ops] == sorted({*a, *b} - {k for k in a if a[k] == b.get(k)})
    for op in d.record_ops:
        assert (op.old, op.new) == (a.get(op.key), b.get(op.key))
    assert tree.apply(store, root_a, [(op.key, op.new) for op in d.record_ops]) == root_b
    nodes_a, nodes_b = set(walk.iter_nodes(store, root_a)), set(walk.iter_nodes(store, root_b))
    assert d.created_nodes == nodes_b - nodes_a
    assert d.deleted_nodes == nodes_a - nodes_b
    full = diff.diff(store, None, root_b)
    assert full.created_nodes == nodes_b and not full.deleted_nodes
    assert [(op.key, op.new) for op in full.record_ops] == sorted(b.items())


@given(_mappings, st.data())
@settings(max_examples=200, deadline=None)
def test_invert_with_only_proof_blocks(before: dict[str, CID], data: st.DataObject) -> None:
    keys = data.draw(st.lists(st.sampled_from(POOL), unique=True, min_size=1, max_size=8))
    after = dict(before)
    ops: list[RecordOp] = []
    for key in keys:
        new = data.draw(st.none() | st.sampled_from(VALUES))
        old = before.get(key)
        if old == new:
            continue
        ops.append(RecordOp(key, old, new))
        if new is None:
            del after[key]
        else:
            after[key] = new
    store = _store()
    root_before = tree.build(store, before.items())
    root_after = tree.build(store, after.items())
    blocks = proof.inductive_proof_nodes(store, root_after, ops)
    proof_only = MemoryBlockStore((c, store.get(c)) for c in blocks)
    assert invert.invert_ops(proof_only, root_after, ops) == root_before


@pytest.mark.slow
@given(st.lists(st.integers(0, 5_000), min_size=1, max_size=300), st.integers(0, 100))
@settings(max_examples=25, deadline=None)
def test_large_trees_batches_and_inversion(numbers: list[int], batch: int) -> None:
    keys = {f"app.bsky.feed.post/3k{n:011d}": cid_for_cbor(str(n).encode()) for n in numbers}
    base = {f"app.bsky.feed.like/3k{n:011d}": VALUES[n % 4] for n in range(0, 3_000, 3)}
    store = _store()
    root_before = tree.build(store, base.items())
    writes: list[tuple[str, CID | None]] = list(keys.items())[:batch]
    writes += [(k, None) for k in list(base)[batch : batch * 2]]
    root_after = tree.apply(store, root_before, writes)
    after = {**base, **dict(writes)}
    assert root_after == tree.build(_store(), [(k, v) for k, v in after.items() if v is not None])
    ops = [RecordOp(k, base.get(k), v) for k, v in writes]
    d = diff.diff(store, root_before, root_after)
    assert d.record_ops == sorted(ops, key=lambda op: op.key)
    blocks = proof.inductive_proof_nodes(store, root_after, ops) | {root_after}
    proof_only = MemoryBlockStore((c, store.get(c)) for c in blocks)
    assert invert.invert_ops(proof_only, root_after, ops) == root_before

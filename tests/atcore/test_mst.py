"""MST against the official vectors: key heights, prefixes, known trees, keys, commit proofs."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from atcore.blockstore import MemoryBlockStore
from atcore.cid import CID, cid_for_cbor, parse_cid
from atcore.errors import InvalidMst, MissingBlock
from atcore.mst import invert, proof, tree, walk
from atcore.mst.diff import RecordOp
from atcore.mst.node import common_prefix_length, key_height
from atcore.mst.store import NodeStore
from tests.vectors import INTEROP, REPO_FIXTURES

_MST = INTEROP / "mst"
_DERIVED = json.loads((REPO_FIXTURES / "mst-interop-vectors.derived.json").read_text())
_KNOWN = {t["name"]: t for t in _DERIVED["knownTrees"]}
_PROOFS = json.loads((INTEROP / "firehose" / "commit-proof-fixtures.json").read_text())
LEAF = parse_cid("bafyreie5cvv4h45feadgeuwhbcutmh6t2ceseocckahdoe6uat64zmz454")


def _store() -> NodeStore:
    return NodeStore(MemoryBlockStore())


def _build(keys: list[str], store: NodeStore | None = None) -> CID:
    return tree.build(store or _store(), [(k, LEAF) for k in keys])


@pytest.mark.parametrize("case", json.loads((_MST / "key_heights.json").read_text()))
def test_key_heights(case: dict[str, Any]) -> None:
    assert key_height(case["key"]) == case["height"]


@pytest.mark.parametrize("case", json.loads((_MST / "common_prefix.json").read_text()))
def test_common_prefix(case: dict[str, Any]) -> None:
    left, right = case["left"].encode(), case["right"].encode()
    assert common_prefix_length(left, right) == case["len"]


def test_example_keys_have_their_advertised_heights() -> None:
    keys = (_MST / "example_keys.txt").read_text().split()
    assert len(keys) > 100
    for key in keys:
        assert key_height(key) == int(key[1]), key


@pytest.mark.parametrize("key", _DERIVED["allowableKeys"]["valid"])
def test_allowable_keys_valid(key: str) -> None:
    store = _store()
    root = tree.put(store, tree.empty_root(store), key, LEAF)
    assert tree.get(store, root, key) == LEAF


@pytest.mark.parametrize("key", [*_DERIVED["allowableKeys"]["invalid"], "coll/" + "a" * 1260])
def test_allowable_keys_invalid(key: str) -> None:
    store = _store()
    with pytest.raises(InvalidMst):
        tree.put(store, tree.empty_root(store), key, LEAF)
    with pytest.raises(InvalidMst):
        tree.build(store, [(key, LEAF)])


def test_key_length_limit_is_inclusive() -> None:
    store = _store()
    key = "coll/" + "a" * (1024 - 5)
    root = tree.put(store, tree.empty_root(store), key, LEAF)
    assert tree.get(store, root, key) == LEAF


def test_empty_root_constant() -> None:
    assert tree.empty_root(_store()) == tree.EMPTY_ROOT
    assert _build([]) == tree.EMPTY_ROOT


@pytest.mark.parametrize("case", _DERIVED["knownTrees"], ids=lambda t: t["name"])
def test_known_trees(case: dict[str, Any]) -> None:
    expected = parse_cid(case["rootCid"])
    assert parse_cid(case["leafValue"]) == LEAF
    store = _store()
    assert _build(case["keys"], store) == expected
    # Incremental puts in several orders reach the same root (history independence) ...
    orders = [case["keys"], case["keys"][::-1], sorted(case["keys"], key=lambda k: k[::-1])]
    for order in orders:
        root = tree.empty_root(store)
        for key in order:
            root = tree.put(store, root, key, LEAF)
        assert root == expected
    # ... and deleting every key in turn gives back the tree built without it.
    for key in case["keys"]:
        rest = [k for k in case["keys"] if k != key]
        assert tree.delete(store, expected, key) == _build(rest)
    assert walk.validate_tree(store, expected) == len(case["keys"])
    assert [k for k, _ in walk.walk(store, expected)] == sorted(case["keys"])


_EDGES = [
    ("trims top of tree on delete: before (layer 1)", "delete", "3jqfcqzm3fs2j", "trims top"),
    (
        "insertion that splits two layers down: before (layer 1)",
        "put",
        "3jqfcqzm3fx2j",
        "after adding",
    ),
    ("new layer two higher: l0root", "put", "3jqfcqzm3fx2j", "l2root ("),
    ("new layer two higher: l2root (add", "put", "3jqfcqzm4fd2j", "l2root2"),
]


@pytest.mark.parametrize(("before", "action", "rkey", "after"), _EDGES)
def test_known_edge_cases(before: str, action: str, rkey: str, after: str) -> None:
    (start,) = [t for name, t in _KNOWN.items() if name.startswith(before)]
    (end,) = [t for name, t in _KNOWN.items() if name != start["name"] and after in name]
    key = "com.example.record/" + rkey
    store = _store()
    root = _build(start["keys"], store)
    if action == "put":
        changed = tree.put(store, root, key, LEAF)
        assert tree.delete(store, changed, key) == root
    else:
        changed = tree.delete(store, root, key)
        assert tree.put(store, changed, key, LEAF) == root
    assert changed == parse_cid(end["rootCid"])
    assert store.load_root(changed)[1] == end["rootLayer"]


def test_delete_absent_key_raises_key_error() -> None:
    store = _store()
    root = _build(_KNOWN["simple"]["keys"], store)
    with pytest.raises(KeyError):
        tree.delete(store, root, "com.example.record/absent")
    with pytest.raises(KeyError):
        tree.delete(store, tree.empty_root(store), "com.example.record/absent")


def test_put_same_value_keeps_root_and_update_changes_it() -> None:
    store = _store()
    keys = _KNOWN["insertion that splits two layers down: before (layer 1)"]["keys"]
    root = _build(keys, store)
    assert tree.put(store, root, keys[3], LEAF) == root
    other = cid_for_cbor(b"\xa0")
    updated = tree.put(store, root, keys[3], other)
    assert updated != root and tree.get(store, updated, keys[3]) == other
    assert tree.put(store, updated, keys[3], LEAF) == root


def test_build_rejects_duplicates() -> None:
    with pytest.raises(InvalidMst):
        tree.build(_store(), [("a/b", LEAF), ("a/b", LEAF)])


def test_apply_stores_only_the_final_tree() -> None:
    store = _store()
    root = _build(["a/1", "a/2"], store)
    before = set(store.blocks.blocks)  # type: ignore[attr-defined]
    writes: list[tuple[str, CID | None]] = [(f"b/{i}", LEAF) for i in range(40)]
    writes += [(f"b/{i}", None) for i in range(0, 40, 2)]
    new_root = tree.apply(store, root, writes)
    added = set(store.blocks.blocks) - before  # type: ignore[attr-defined]
    assert added == set(walk.iter_nodes(store, new_root)) - before
    assert new_root == _build(["a/1", "a/2", *(f"b/{i}" for i in range(1, 40, 2))])


def test_root_after_gives_applys_root_and_writes_nothing() -> None:
    store = _store()
    root = _build([f"a/{i}" for i in range(30)], store)
    before = set(store.blocks.blocks)  # type: ignore[attr-defined]
    writes: list[tuple[str, CID | None]] = [(f"b/{i}", LEAF) for i in range(40)]
    writes += [(f"a/{i}", None) for i in range(0, 30, 3)]
    assert tree.root_after(store, root, writes) == tree.apply(_store_with(store), root, writes)
    assert set(store.blocks.blocks) == before  # type: ignore[attr-defined]


def _store_with(store: NodeStore) -> NodeStore:
    return NodeStore(MemoryBlockStore(store.blocks))  # type: ignore[arg-type]


@pytest.mark.parametrize("fixture", _PROOFS, ids=lambda f: f["comment"])
def test_commit_proof_fixtures(fixture: dict[str, Any]) -> None:
    leaf = parse_cid(fixture["leafValue"])
    store = _store()
    before = tree.build(store, [(k, leaf) for k in fixture["keys"]])
    assert before == parse_cid(fixture["rootBeforeCommit"])
    writes: list[tuple[str, CID | None]] = [(k, leaf) for k in fixture["adds"]]
    writes += [(k, None) for k in fixture["dels"]]
    after = tree.apply(store, before, writes)
    assert after == parse_cid(fixture["rootAfterCommit"])
    ops = [RecordOp(k, None, leaf) for k in fixture["adds"]]
    ops += [RecordOp(k, leaf, None) for k in fixture["dels"]]
    blocks = proof.inductive_proof_nodes(store, after, ops)
    assert {c.encode() for c in blocks} == set(fixture["blocksInProof"])
    proof_only = MemoryBlockStore((c, store.get(c)) for c in blocks)
    assert invert.invert_ops(proof_only, after, ops) == before


def test_invert_without_the_proof_raises_missing_block() -> None:
    store = _store()
    keys = [f"app.bsky.feed.post/{n:06d}" for n in range(500)]
    before = _build(keys, store)
    deep = next(k for k in keys if key_height(k) == 0)
    after = tree.delete(store, before, deep)
    ops = [RecordOp(deep, LEAF, None)]
    root_only = MemoryBlockStore([(after, store.get(after))])
    with pytest.raises(MissingBlock):
        invert.invert_ops(root_only, after, ops)
    blocks = proof.inductive_proof_nodes(store, after, ops)
    assert len(blocks) > 2
    proof_only = MemoryBlockStore((c, store.get(c)) for c in blocks)
    assert invert.invert_ops(proof_only, after, ops) == before


def test_invert_rejects_ops_that_do_not_match_the_tree() -> None:
    fixture = _PROOFS[0]
    store = _store()
    keys = fixture["keys"] + fixture["adds"]
    root = _build(keys, store)
    other = cid_for_cbor(b"\x01")
    with pytest.raises(InvalidMst, match="claims"):  # wrong CID for a create
        invert.invert_ops(store, root, [RecordOp(fixture["adds"][0], None, other)])
    with pytest.raises(InvalidMst, match="claims"):  # a "deleted" key is still there
        invert.invert_ops(store, root, [RecordOp(keys[0], LEAF, None)])
    with pytest.raises(InvalidMst, match="more than once"):
        invert.invert_ops(store, root, [RecordOp(keys[0], None, LEAF)] * 2)
    # A consistent delete of an absent key re-inserts it.
    restored = invert.invert_ops(store, root, [RecordOp("Z0/000000", LEAF, None)])
    assert restored == _build([*keys, "Z0/000000"])


def test_proof_nodes_paths() -> None:
    store = _store()
    keys = [k for k in (_MST / "example_keys.txt").read_text().split()][:60]
    root = _build(keys, store)
    for key in [*keys, "A9/000000", "Q3/999999"]:
        path = proof.proof_nodes(store, root, key)
        assert root in path
        proof_only = MemoryBlockStore((c, store.get(c)) for c in path)
        assert tree.get(proof_only, root, key) == (LEAF if key in keys else None)
    assert proof.covering_proof(store, root, keys[:3]) == set().union(
        *(proof.proof_nodes(store, root, k) for k in keys[:3])
    )


def test_list_range_bounds_and_direction() -> None:
    store = _store()
    keys = sorted(f"{c}/{n:04d}" for c, n in itertools.product("abc", range(0, 300, 7)))
    root = _build(keys, store)
    cases = [(None, None), ("a/0100", None), (None, "b/0050"), ("a/0203", "c/0007"), ("b/", "b0")]
    for start, end in cases:
        expected = [k for k in keys if (start is None or k > start) and (end is None or k < end)]
        got = [k for k, _ in walk.list_range(store, root, start, end)]
        assert got == expected
        back = [k for k, _ in walk.list_range(store, root, start, end, reverse=True, limit=5)]
        assert back == expected[::-1][:5]


def test_iter_car_order_is_preorder_with_records_interleaved() -> None:
    store = _store()
    keys = [k for k in (_MST / "example_keys.txt").read_text().split()]
    values = {k: cid_for_cbor(k.encode()) for k in keys}
    root = tree.build(store, values.items())

    def expected(cid: CID, height: int) -> list[tuple[CID, bool]]:
        node = store.load(cid, height) if cid != root else store.load_root(cid)[0]
        out = [(cid, True)]
        if node.left is not None:
            out += expected(node.left, height - 1)
        for _, value, right in node.entries:
            out.append((value, False))
            if right is not None:
                out += expected(right, height - 1)
        return out

    order = list(walk.iter_car_order(store, root))
    assert order == expected(root, store.load_root(root)[1])
    assert [c for c, is_node in order if not is_node] == [values[k] for k in sorted(keys)]
    assert [c for c, is_node in order if is_node] == list(walk.iter_nodes(store, root))

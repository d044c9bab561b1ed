"""MST operation inversion: recompute the previous root from a #commit's partial tree and ops
(spec-repository.md, "Repository Diffs"; spec-sync.md; blog-relay-updates-sync-v1-1.md)."""

from __future__ import annotations

from collections.abc import Iterable

from atcore.blockstore import BlockStore
from atcore.cid import CID
from atcore.errors import InvalidMst
from atcore.mst import tree
from atcore.mst.diff import RecordOp
from atcore.mst.store import as_node_store

__all__ = ["MAX_OPS", "invert_ops"]

# A #commit carries at most 200 ops (spec-sync.md); a batch import may invert more, bounded.
MAX_OPS = 10_000


def invert_ops(store: BlockStore, new_root: CID, ops: Iterable[RecordOp]) -> CID:
    """Undo `ops` on the tree at `new_root`; returns the previous root.

    Ops are RecordOp(key, old, new): a create has old None, a delete new None. Each op is first
    checked against the new tree (a create or update must find `new` under its key, a delete
    must find the key absent), so ops that lie about the tree are rejected, not just folded
    into a wrong root. `store` may hold only the #commit's blocks: the walk touches just the
    nodes on the ops' paths and their neighbours, and a block outside the proof raises
    MissingBlock, which means the proof was insufficient.
    """
    ops = list(ops)
    if len(ops) > MAX_OPS:
        raise InvalidMst(f"too many ops to invert: {len(ops)} (limit {MAX_OPS})")
    if len({op.key for op in ops}) != len(ops):
        raise InvalidMst("ops touch the same key more than once")
    ns = as_node_store(store)
    for op in ops:
        if op.old is None and op.new is None:
            raise InvalidMst(f"op on {op.key} has neither an old nor a new value")
        current = tree.get(ns, new_root, op.key)
        if current != op.new:
            raise InvalidMst(
                f"op on {op.key} claims {_show(op.new)} but the new tree holds {_show(current)}"
            )
    return tree.root_after(ns, new_root, [(op.key, op.old) for op in ops])


def _show(cid: CID | None) -> str:
    return "nothing" if cid is None else cid.encode()

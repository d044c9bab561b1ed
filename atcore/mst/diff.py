"""Differences between two MSTs: record operations and node sets (spec-repository.md, "Repository
Diffs"). Subtrees with the same CID on both sides are skipped without being loaded."""

from __future__ import annotations

from dataclasses import dataclass, field

from atcore.blockstore import BlockStore
from atcore.cid import CID
from atcore.mst.node import NodeData
from atcore.mst.store import NodeStore, as_node_store

__all__ = ["RecordOp", "MstDiff", "diff"]


@dataclass(frozen=True, slots=True)
class RecordOp:
    """One key's change: create (old None), update (both set) or delete (new None)."""

    key: str
    old: CID | None
    new: CID | None


@dataclass(slots=True)
class MstDiff:
    record_ops: list[RecordOp] = field(default_factory=list)
    created_nodes: set[CID] = field(default_factory=set)
    deleted_nodes: set[CID] = field(default_factory=set)


class _Frame:
    __slots__ = ("node", "height", "slot")

    def __init__(self, node: NodeData, height: int) -> None:
        self.node = node
        self.height = height
        self.slot = 0


class _Cursor:
    """A position in one tree's in-order sequence of subtree links and entries.

    A frame is a node, its height and a slot: slot 2j is the link before entry j (the left link for
    j = 0, else entry j-1's right link), slot 2j+1 is entry j.
    """

    def __init__(self, ns: NodeStore, root: CID | None, seen: set[CID]) -> None:
        self.ns = ns
        self.seen = seen
        self.stack: list[_Frame] = []
        # A virtual parent holding just the root link, so the root can be skipped or entered.
        self.root: CID | None = root
        self.root_height = 0

    def link(self) -> tuple[CID, int] | None:
        """The subtree link at the current position, with the child's height."""
        if not self.stack:
            return (self.root, self.root_height) if self.root is not None else None
        frame = self.stack[-1]
        slot = frame.slot
        if slot % 2:
            return None
        link = frame.node.left if slot == 0 else frame.node.entries[slot // 2 - 1][2]
        return (link, frame.height - 1) if link is not None else None

    def entry(self) -> tuple[bytes, CID] | None:
        if not self.stack:
            return None
        frame = self.stack[-1]
        if frame.slot % 2 == 0:
            return None
        key, value, _ = frame.node.entries[frame.slot // 2]
        return key, value

    @property
    def done(self) -> bool:
        return not self.stack and self.root is None

    def advance(self) -> None:
        """Step past the current link (without entering it) or entry."""
        if not self.stack:
            self.root = None
            return
        self.stack[-1].slot += 1
        self._settle()

    def descend(self) -> None:
        """Enter the subtree at the current link."""
        here = self.link()
        assert here is not None
        cid, height = here
        if not self.stack:
            self.root = None
            node, height = self.ns.load_root(cid)
        else:
            node = self.ns.load(cid, height)
        self.seen.add(cid)
        self.stack.append(_Frame(node, height))
        self._settle()

    def _settle(self) -> None:
        # Skip empty link slots and leave exhausted nodes.
        while self.stack:
            frame = self.stack[-1]
            if frame.slot > 2 * len(frame.node.entries):
                self.stack.pop()
                if self.stack:
                    self.stack[-1].slot += 1
                continue
            if frame.slot % 2 == 0 and self.link() is None:
                frame.slot += 1
                continue
            return


def diff(store: BlockStore, old_root: CID | None, new_root: CID) -> MstDiff:
    """What changed from `old_root` (None: nothing) to `new_root`, record ops sorted by key."""
    ns = as_node_store(store)
    old_seen: set[CID] = set()
    new_seen: set[CID] = set()
    a, b = _Cursor(ns, old_root, old_seen), _Cursor(ns, new_root, new_seen)
    if a.root is not None:
        a.root_height = ns.load_root(a.root)[1]
    b.root_height = ns.load_root(new_root)[1]
    ops: list[RecordOp] = []
    while not (a.done and b.done):
        la, lb = a.link(), b.link()
        if la is not None and lb is not None:
            if la[0] == lb[0]:
                a.advance()
                b.advance()
            elif la[1] >= lb[1]:
                a.descend()
            else:
                b.descend()
            continue
        if la is not None:
            a.descend()
            continue
        if lb is not None:
            b.descend()
            continue
        ea, eb = a.entry(), b.entry()
        if ea is not None and (eb is None or ea[0] < eb[0]):
            ops.append(RecordOp(ea[0].decode(), ea[1], None))
            a.advance()
        elif eb is not None and (ea is None or eb[0] < ea[0]):
            ops.append(RecordOp(eb[0].decode(), None, eb[1]))
            b.advance()
        else:
            assert ea is not None and eb is not None
            if ea[1] != eb[1]:
                ops.append(RecordOp(ea[0].decode(), ea[1], eb[1]))
            a.advance()
            b.advance()
    return MstDiff(ops, new_seen - old_seen, old_seen - new_seen)

"""Differences between two MSTs: record operations and node sets (spec-repository.md, "Repository
Diffs"). Subtrees with the same CID on both sides are skipped without being loaded."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from atcore.blockstore import BlockStore
from atcore.cid import CID
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


Entry = tuple[bytes, bytes]


class _Cursor:
    """A walk through one tree's in-order sequence of subtree links and entries.

    A frame is [slots, position, height of the linked subtrees], slots being a node's links
    (bytes) and entries (key, value) in order; the bottom frame is virtual, holding just the
    root link, so the root can be skipped or entered like any subtree.
    """

    def __init__(self, ns: NodeStore, root: bytes | None, seen: set[bytes]) -> None:
        self.ns = ns
        self.seen = seen
        self.frames: list[list[Any]] = []
        if root is not None:
            self.frames.append([[root], 0, ns.root(root)[0]])

    def current(self) -> tuple[bytes | None, Entry | None, int]:
        """The link or the entry at the cursor (both None at the end), and the height of the
        subtrees linked from here."""
        frames = self.frames
        while frames:
            slots, pos, height = frames[-1]
            if pos < len(slots):
                slot = slots[pos]
                if isinstance(slot, bytes):
                    return slot, None, height
                return None, slot, height
            frames.pop()
            if frames:
                frames[-1][1] += 1
        return None, None, 0

    def advance(self) -> None:
        """Step past the current slot (a link is skipped, not entered)."""
        self.frames[-1][1] += 1

    def descend(self, link: bytes, height: int) -> None:
        """Enter the subtree at the current link."""
        node = self.ns.root(link) if len(self.frames) == 1 else self.ns.node(link, height)
        self.seen.add(link)
        _, _, keys, vals, links, _ = node
        slots: list[bytes | Entry] = []
        for j, key in enumerate(keys):
            child = links[j]
            if child is not None:
                slots.append(child)
            slots.append((key, vals[j]))
        last = links[-1]
        if last is not None:
            slots.append(last)
        self.frames.append([slots, 0, height - 1])


def diff(store: BlockStore, old_root: CID | None, new_root: CID) -> MstDiff:
    """What changed from `old_root` (None: nothing) to `new_root`, record ops sorted by key."""
    ns = as_node_store(store)
    old_seen: set[bytes] = set()
    new_seen: set[bytes] = set()
    a = _Cursor(ns, None if old_root is None else old_root.cid_bytes, old_seen)
    b = _Cursor(ns, new_root.cid_bytes, new_seen)
    ops: list[RecordOp] = []
    while True:
        la, ea, ha = a.current()
        lb, eb, hb = b.current()
        if la is not None and lb is not None:
            if la == lb:  # the same subtree on both sides
                a.advance()
                b.advance()
            elif ha >= hb:
                a.descend(la, ha)
            else:
                b.descend(lb, hb)
        elif la is not None:
            a.descend(la, ha)
        elif lb is not None:
            b.descend(lb, hb)
        elif ea is not None and (eb is None or ea[0] < eb[0]):
            ops.append(RecordOp(ea[0].decode(), CID(ea[1]), None))
            a.advance()
        elif eb is not None and (ea is None or eb[0] < ea[0]):
            ops.append(RecordOp(eb[0].decode(), None, CID(eb[1])))
            b.advance()
        elif ea is not None and eb is not None:
            if ea[1] != eb[1]:
                ops.append(RecordOp(ea[0].decode(), CID(ea[1]), CID(eb[1])))
            a.advance()
            b.advance()
        else:
            break
    created = {CID(link) for link in new_seen - old_seen}
    return MstDiff(ops, created, {CID(link) for link in old_seen - new_seen})

"""atcore against atmst (the MST library behind the millipds PDS), side by side in one run.

Run: ./scripts/setup bench && .venv/bin/python bench/core.py [--n 100000] [--repeat 5]
Prints a Markdown table: each measure for Skyloft, for the peer where it has one, and the
speed-up. MST measures over `--n` items run once each (they take tens of seconds for the
peer); micro-benchmarks give the median of `--repeat` batches.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import atmst.blockstore
import atmst.mst.diff
import atmst.mst.node
import atmst.mst.node_store
import atmst.mst.node_wrangler
import cbor2

from atcore import car, cbor, keys
from atcore.blockstore import MemoryBlockStore
from atcore.cid import CID, cid_for_cbor
from atcore.commit import create_commit
from atcore.mst import diff, node, tree, walk
from atcore.mst.store import NodeStore
from atcore.syntax.did import parse_did
from atcore.syntax.tid import TidClock

Row = tuple[str, float, float | None, str]
POST = {
    "$type": "app.bsky.feed.post",
    "text": "Hello from the benchmark, a post of ordinary length with a link https://example.com",
    "langs": ["en"],
    "createdAt": "2026-11-29T12:00:00.000Z",
}


def seconds(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def micro(fn: Callable[[], object], loops: int, repeat: int) -> float:
    """Median microseconds per call."""

    def batch() -> None:
        for _ in range(loops):
            fn()

    return statistics.median(seconds(batch) for _ in range(repeat)) / loops * 1e6


def dataset(n: int, seed: int = 1) -> list[tuple[str, CID]]:
    clock = TidClock(now=iter(range(1_700_000_000_000_000, 1 << 53, 997)).__next__, clock_id=seed)
    return [
        (f"app.bsky.feed.post/{clock.next()}", cid_for_cbor(cbor.encode({**POST, "i": i})))
        for i in range(n)
    ]


def ours_puts(items: list[tuple[str, CID]], store: NodeStore | None = None) -> CID:
    """Puts through a NodeStore (decoded-node cache), as a PDS holds one per repository."""
    store = store if store is not None else NodeStore(MemoryBlockStore())
    root = tree.empty_root(store)
    for key, value in items:
        root = tree.put(store, root, key, value)
    return root


class Peer:
    """atmst with every new node stored in its memory block store, as a live PDS does."""

    def __init__(self) -> None:
        self.ns = atmst.mst.node_store.NodeStore(atmst.blockstore.MemoryBlockStore())
        self.wrangler = atmst.mst.node_wrangler.NodeWrangler(self.ns)
        self.root: Any = self.ns.get_node(None).cid

    def puts(self, items: list[tuple[str, CID]]) -> Any:
        for key, value in items:
            self.root = self.wrangler.put_record(self.root, key, value)
        return self.root


def mst_rows(n: int) -> list[Row]:
    items = dataset(n)
    shuffled = items[:]
    random.Random(7).shuffle(shuffled)
    rows: list[Row] = []

    peer = Peer()
    t_peer = seconds(lambda: peer.puts(items))
    store = NodeStore(MemoryBlockStore())
    root: list[CID] = []
    t_ours = seconds(lambda: root.append(ours_puts(items, store)))
    assert str(root[0]) == str(peer.root), "different roots for the same items"
    rows.append((f"MST {n:,} puts in key order, every node stored", t_ours, t_peer, "s"))

    peer_random = Peer()
    t_peer = seconds(lambda: peer_random.puts(shuffled))
    t_ours = seconds(lambda: ours_puts(shuffled))
    rows.append((f"MST {n:,} puts in random order, every node stored", t_ours, t_peer, "s"))

    built: list[CID] = []
    t_ours = seconds(lambda: built.append(tree.build(MemoryBlockStore(), shuffled)))
    assert built[0] == root[0]
    rows.append((f"MST bulk build of {n:,} items (peer: no bulk build)", t_ours, None, "s"))

    edits = dataset(10_000, seed=2)
    rng = random.Random(3)
    writes = [(k, v) if rng.random() < 0.5 else (rng.choice(items)[0], None) for k, v in edits]
    writes = list({k: v for k, v in writes}.items())

    def ours_edits() -> None:
        r = root[0]
        for key, value in writes:
            r = tree.put(store, r, key, value) if value else tree.delete(store, r, key)

    def peer_edits() -> None:
        r = peer.root
        for key, value in writes:
            r = (
                peer.wrangler.put_record(r, key, value)
                if value
                else peer.wrangler.del_record(r, key)
            )

    rows.append(
        (f"MST 10k random puts/deletes into {n:,}", seconds(ours_edits), seconds(peer_edits), "s")
    )

    changed = [(k, cid_for_cbor(cbor.encode({"changed": k}))) for k, _ in rng.sample(items, 100)]
    other = root[0]
    for key, value in changed:
        other = tree.put(store, other, key, value)
    peer_other = peer.root
    for key, value in changed:
        peer_other = peer.wrangler.put_record(peer_other, key, value)

    def peer_diff() -> None:
        created, deleted = atmst.mst.diff.mst_diff(peer.ns, peer.root, peer_other)
        list(atmst.mst.diff.record_diff(peer.ns, created, deleted))

    d: list[diff.MstDiff] = []
    t_ours = seconds(lambda: d.append(diff.diff(store, root[0], other)))
    assert len(d[0].record_ops) == 100
    rows.append(
        (
            f"MST diff of two {n:,} trees, 100 keys apart",
            t_ours * 1e3,
            seconds(peer_diff) * 1e3,
            "ms",
        )
    )
    return rows


def car_rows(n: int, repeat: int) -> list[Row]:
    store = MemoryBlockStore()
    items = []
    for i in range(n):
        block = cbor.encode({**POST, "i": i})
        cid = cid_for_cbor(block)
        store.put(cid, block)
        items.append((f"app.bsky.feed.post/{i:013d}", cid))
    data = tree.build(store, items)
    blocks = [(cid, store.get(cid)) for cid, _ in walk.iter_car_order(store, data)]
    written = car.write_car(data, blocks)
    mb = len(written) / 1e6
    t_write = statistics.median(seconds(lambda: car.write_car(data, blocks)) for _ in range(repeat))
    t_read = statistics.median(
        seconds(lambda: sum(1 for _ in car.iter_car_blocks(written))) for _ in range(repeat)
    )
    return [
        (f"CAR write, {n:,}-record repo ({mb:.0f} MB)", mb / t_write, None, "MB/s"),
        (f"CAR streaming read, every hash verified ({mb:.0f} MB)", mb / t_read, None, "MB/s"),
    ]


def codec_rows(repeat: int) -> list[Row]:
    key = keys.generate_k256()
    commit = create_commit(
        parse_did("did:plc:ewvi7nxzyoun6zhxrhs64oiz"), cid_for_cbor(b"x"), TidClock().next(), key
    )[1]
    # A 16-entry leaf node: the first 16 keys of height 0 (each key is, with odds 3/4).
    leaf = sorted((k.encode(), v) for k, v in dataset(64) if node.key_height(k) == 0)[:16]
    node_bytes = node.encode_node(node.NodeData(None, tuple((k, v, None) for k, v in leaf)))
    post = cbor.encode(POST)
    rows: list[Row] = []
    for label, blob in (
        ("post", post),
        ("commit", commit),
        ("16-entry MST node", node_bytes),
    ):
        value = cbor.decode(blob)
        rows.append(
            (
                f"DAG-CBOR encode, {label} (peer: cbor2 canonical)",
                micro(partial(cbor.encode, value), 2000, repeat),
                micro(partial(_cbor2_dumps, value), 2000, repeat),
                "µs",
            )
        )
        rows.append(
            (
                f"DAG-CBOR strict decode, {label} (peer: cbor2, lenient)",
                micro(partial(cbor.decode, blob), 2000, repeat),
                micro(partial(cbor2.loads, blob), 2000, repeat),
                "µs",
            )
        )
    rows.append(
        (
            "MST node decode, 16 entries: layout, keys, one height (peer: atmst)",
            micro(partial(node.decode_fields, node_bytes), 2000, repeat),
            micro(partial(atmst.mst.node.MSTNode.deserialise, node_bytes), 2000, repeat),
            "µs",
        )
    )
    message = post * 4
    signature = key.sign(message)
    public = key.public_key()
    rows.append(("K-256 sign", micro(lambda: key.sign(message), 500, repeat), None, "µs"))
    rows.append(
        ("K-256 verify", micro(lambda: public.verify(message, signature), 500, repeat), None, "µs")
    )
    return rows


def _cbor2_dumps(value: Any) -> bytes:
    return cbor2.dumps(value, canonical=True, default=_cbor2_cid)


def _cbor2_cid(encoder: Any, value: Any) -> None:
    encoder.encode(cbor2.CBORTag(42, b"\x00" + bytes(value)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rows = mst_rows(args.n) + car_rows(args.n, args.repeat) + codec_rows(args.repeat)
    print("| measure | Skyloft | atmst / peer | speed-up |")
    print("|---|---:|---:|---:|")
    for label, ours, peer, unit in rows:
        higher_is_better = unit.endswith("/s")
        ratio = "" if peer is None else f"{(ours / peer if higher_is_better else peer / ours):.1f}x"
        peer_text = "" if peer is None else f"{peer:,.2f} {unit}"
        print(f"| {label} | {ours:,.2f} {unit} | {peer_text} | {ratio} |")


if __name__ == "__main__":
    main()

"""Strict MST node decoding and the per-node / whole-tree layout checks."""

from __future__ import annotations

import hashlib
import random
import re
import subprocess
import sys
from typing import Any

import cbrrr
import pytest

from atcore.blockstore import MemoryBlockStore
from atcore.cid import CID, cid_for_cbor, cid_for_raw
from atcore.errors import InvalidMst
from atcore.mst import _node, node_py, raw, tree, walk
from atcore.mst.node import (
    MAX_ENTRIES,
    MAX_KEY_LENGTH,
    NodeData,
    encode_fields,
    encode_node,
    key_height,
    node_data,
)
from atcore.mst.store import NodeStore
from tests.vectors import INTEROP

LEAF = cid_for_cbor(b"\xa0")
LINK = cid_for_cbor(b"\x80")
H0 = [b"A0/374913", b"B0/601692", b"C0/451630"]  # height 0 (example_keys.txt)
H1 = b"B1/986427"
# Record values of both kinds atcore.cbor accepts: dag-cbor and raw-codec CIDv1 sha2-256.
VALUES = [cid_for_cbor(b"a"), cid_for_raw(b"a")]
IMPLS = {"c": _node, "python": node_py}


@pytest.fixture(params=IMPLS.values(), ids=IMPLS.keys())
def impl(request: pytest.FixtureRequest) -> Any:
    """Each node decoder: the C module and the pure-Python fallback."""
    return request.param


def entry(k: bytes, p: int = 0, t: CID | None = None, v: Any = LEAF) -> dict[str, Any]:
    return {"k": k, "p": p, "t": t, "v": v}


def node(*entries: dict[str, Any], left: Any = None) -> bytes:
    return bytes(cbrrr.encode_dag_cbor({"e": list(entries), "l": left}))


def test_valid_node_round_trips(impl: Any) -> None:
    data = node(entry(H0[0]), entry(H0[1][:0] + H0[1]), entry(H0[2]))
    decoded = node_data(impl.decode_fields(data)[0])
    assert decoded == NodeData(None, tuple((k, LEAF, None) for k in H0))
    assert encode_node(decoded) == data
    shared = [b"coll/ab0", b"coll/ab1", b"coll/b1"]
    assert {key_height(k) for k in shared} == {0}
    data = node(entry(shared[0]), entry(b"1", 7, LINK), entry(b"b1", 5, v=VALUES[1]))
    assert encode_node(node_data(impl.decode_fields(data)[0])) == data


MALFORMED = {
    "extra node field": bytes(cbrrr.encode_dag_cbor({"e": [], "l": None, "x": 1})),
    "missing left field": bytes(cbrrr.encode_dag_cbor({"e": []})),
    "entries not a list": bytes(cbrrr.encode_dag_cbor({"e": {}, "l": None})),
    "left is bytes": node(left=b"\x01"),
    "left is a raw-codec CID": node(left=cid_for_raw(b"x")),
    "extra entry field": bytes(cbrrr.encode_dag_cbor({"e": [{**entry(H0[0]), "x": 0}], "l": None})),
    "float prefix": node(entry(H0[0]), {**entry(H0[1]), "p": 0.0}),
    "bool prefix": node(entry(H0[0]), entry(H0[1], p=True)),
    "key as text": node({**entry(H0[0]), "k": "A0/374913"}),
    "value null": node(entry(H0[0], v=None)),
    "value an empty CID": node(entry(H0[0], v=CID(b""))),
    "value a sha2-512 CID": node(entry(H0[0], v=CID(bytes.fromhex("01711340") + bytes(64)))),
    "value a CIDv0": node(entry(H0[0], v=CID(bytes.fromhex("1220") + bytes(32)))),
    "right is a raw-codec CID": node(entry(H0[0], t=cid_for_raw(b"x"))),
    "unsorted keys": node(entry(H0[1]), entry(H0[0])),
    "duplicate keys": node(entry(H0[0]), entry(b"", 9)),
    "prefix longer than previous key": node(entry(H0[0]), entry(b"x", 10)),
    "first prefix not zero": node(entry(b"0/374913", 1)),
    "negative prefix": node(entry(H0[0]), entry(H0[1], p=-1)),
    "prefix not maximal": node(entry(b"coll/ab0"), entry(b"ab1", 5)),
    "keys of different heights": node(entry(H0[0]), entry(H1)),
    "invalid key characters": node(entry(b"coll/a b")),
    "key without collection": node(entry(b"abc")),
    "key holding a newline between two valid keys": node(entry(b"coll/a\ncoll/b")),
    "record key ..": node(entry(b"coll/..")),
    "second key invalid": node(entry(b"coll/a"), entry(b" b", 5)),
    "key over 1024 bytes": node(entry(b"c/" + b"a" * 1023)),
    "trailing bytes": node(entry(H0[0])) + b"\x00",
    "too many entries": node(*[entry(b"c/%05d" % i) for i in range(MAX_ENTRIES + 1)]),
}


@pytest.mark.parametrize("data", MALFORMED.values(), ids=MALFORMED.keys())
def test_decode_rejects(impl: Any, data: bytes) -> None:
    with pytest.raises(InvalidMst):
        impl.decode_fields(data)


def _stored(store: NodeStore, data: bytes) -> CID:
    cid = cid_for_cbor(data)
    store.put(cid, data)
    return cid


def test_node_store_checks_heights_and_emptiness() -> None:
    store = NodeStore(MemoryBlockStore())
    leaf_node = _stored(store, node(entry(H0[0])))
    with pytest.raises(InvalidMst, match="height"):
        store.load(leaf_node, 1)
    empty = _stored(store, node())
    with pytest.raises(InvalidMst, match="empty node below the root"):
        store.load(empty, 0)
    bottom_link = _stored(store, node(entry(H0[0], t=leaf_node)))
    with pytest.raises(InvalidMst, match="height 0 links"):
        store.load_root(bottom_link)
    top_empty = _stored(store, node(left=_stored(store, node(entry(H1)))))
    with pytest.raises(InvalidMst, match="empty node with a subtree"):
        store.load_root(top_empty)
    wrong_level = _stored(store, node(entry(b"D1/000000")))
    with pytest.raises(InvalidMst, match="height-1 keys at height 0"):
        walk.validate_tree(store, _stored(store, node(entry(H1, t=wrong_level))))


def test_validate_tree_rejects_keys_outside_their_range() -> None:
    store = NodeStore(MemoryBlockStore())
    # B1 at the top with a left child holding C0, which sorts after B1.
    child = _stored(store, node(entry(H0[2])))
    bad = _stored(store, node(entry(H1), left=child))
    with pytest.raises(InvalidMst, match="outside its parent's key range"):
        walk.validate_tree(store, bad)
    good = _stored(store, node(entry(H1), left=_stored(store, node(entry(H0[0])))))
    assert walk.validate_tree(store, good) == 2
    assert good == tree.build(store, [(H1.decode(), LEAF), (H0[0].decode(), LEAF)])


def _working_nodes(store: NodeStore, node: raw.Node) -> list[raw.Node]:
    found = [node]
    for child in node[4]:
        if child is not None:
            found += _working_nodes(store, store.node(child, node[0] - 1))
    return found


def test_edited_nodes_equal_fresh_encodings() -> None:
    """Edits splice links into a node's bytes and shift its entry offsets: every node they
    leave must be exactly the node encoded from scratch, and decode to the same fields with
    either decoder."""
    keys = (INTEROP / "mst" / "example_keys.txt").read_text().split()
    rng = random.Random(5)
    # Record CIDs of two sizes: sha2-256 (36 bytes) and a longer sha2-512 CID.
    values = VALUES
    store = NodeStore(MemoryBlockStore())
    root = tree.empty_root(store)
    present: list[str] = []
    for key in rng.sample(keys, len(keys)):
        root = tree.put(store, root, key, rng.choice(values))
        present.append(key)
        if rng.random() < 0.3:
            root = tree.delete(store, root, present.pop(rng.randrange(len(present))))
    nodes = _working_nodes(store, store.root(root.cid_bytes))
    assert len(nodes) > 10
    for node in nodes:
        fresh = raw.make(node[0], (node[2], node[3], node[4]))
        assert node == fresh
        height = key_height(node[2][0]) if node[2] else None
        for impl in IMPLS.values():
            assert impl.decode_fields(node[1]) == ((node[2], node[3], node[4]), height, node[5])


@pytest.mark.parametrize("count", [1, 23, 24, 300])
@pytest.mark.parametrize("prefix", [b"a.b/", b"app.bsky.feed.like/" + b"x" * 300])
def test_decoded_offsets_match_encoding(impl: Any, count: int, prefix: bytes) -> None:
    """The offsets decode_fields finds from sizes alone are the encoder's, across head sizes:
    suffixes and shared prefixes under and over 24 and 256 bytes, entry counts under and over
    24, with and without links, values of both codecs."""
    rng = random.Random(count)
    found: set[bytes] = set()
    while len(found) < count:
        key = prefix + bytes(rng.choices(b"abc", k=rng.choice((1, 30, 300))))
        if key_height(key) == 0:
            found.add(key)
    keys = tuple(sorted(found))
    vals = tuple(rng.choice(VALUES).cid_bytes for _ in keys)
    links = tuple(rng.choice((None, LINK.cid_bytes)) for _ in range(len(keys) + 1))
    fields = (keys, vals, links)
    data, offsets = encode_fields(fields)
    assert impl.decode_fields(data) == (fields, 0, offsets)


# Independent statements of the key rules (spec-repository.md), for checking the C code.
_KEY = re.compile(rb"[A-Za-z0-9._:~-]+/(?!\.\.?\Z)[A-Za-z0-9._:~-]+")


def _key_ok(key: bytes) -> bool:
    return len(key) <= MAX_KEY_LENGTH and _KEY.fullmatch(key) is not None


def _height(key: bytes) -> int:
    digest = int.from_bytes(hashlib.sha256(key).digest(), "big")
    return (256 - digest.bit_length()) // 2


def test_key_rules_agree_with_a_regex_and_hashlib(impl: Any) -> None:
    """Both implementations, on random keys over the path alphabet and a few bytes outside it,
    of lengths around the SHA-256 block boundaries and the 1024-byte limit; and keys of height
    4 and more (whose digests start with a zero byte)."""
    rng = random.Random(11)
    alphabet = b"abcXYZ019._:~-/" + bytes((0, 10, 32, 0x2E, 0x7F, 0x80, 0xFF))
    for _ in range(20_000):
        n = rng.choice((rng.randrange(1, 80), rng.randrange(1018, 1030)))
        key = bytes(rng.choices(alphabet, k=n))
        if rng.random() < 0.5:
            cut = rng.randrange(1, n + 1)
            key = key[:cut].replace(b"/", b"a") + b"/" + key[cut:].replace(b"/", b"b")
        assert impl.is_valid_key(key) is _key_ok(key), key
        assert impl.key_height(key) == _height(key), key
    tall = [k for i in range(200_000) if _height(k := b"app.bsky.feed.post/%d" % i) >= 4]
    assert tall and all(impl.key_height(k) == _height(k) for k in tall)
    assert impl.is_valid_key(b"a/" + b"b" * 1022) and not impl.is_valid_key(b"a/" + b"b" * 1023)
    assert (
        not impl.is_valid_key(b"a/.")
        and not impl.is_valid_key(b"a/..")
        and impl.is_valid_key(b"a/...")
    )


def _oracle(data: bytes) -> Any:
    """The node schema read through cbrrr's generic strict DAG-CBOR decoder, independently of
    both node decoders: the fields, the height and the offsets the encoder would give, or None
    for a node to reject. Links decode as bytearray, which nothing else decodes to; tree links
    must be dag-cbor sha2-256 CIDv1s, values those or raw-codec ones (atcore.cbor's rule)."""
    try:
        obj = cbrrr.decode_dag_cbor(data, cid_ctor=bytearray)
    except (cbrrr.CbrrrDecodeError, ValueError, EOFError, OverflowError, TypeError):
        return None

    def link(value: Any, prefixes: tuple[bytes, ...]) -> bool:
        return type(value) is bytearray and len(value) == 36 and value.startswith(prefixes)

    def tree_link(value: Any) -> bool:
        return value is None or link(value, (b"\x01q\x12 ",))

    if type(obj) is not dict or obj.keys() != {"e", "l"} or type(obj["e"]) is not list:
        return None
    entries = obj["e"]
    if not tree_link(obj["l"]) or len(entries) > MAX_ENTRIES:
        return None
    keys: list[bytes] = []
    vals: list[bytes] = []
    links = [obj["l"]]
    for item in entries:
        if type(item) is not dict or item.keys() != {"k", "p", "t", "v"}:
            return None
        p, suffix, value, right = item["p"], item["k"], item["v"], item["t"]
        prev = keys[-1] if keys else b""
        if type(p) is not int or type(suffix) is not bytes:
            return None
        if not link(value, (b"\x01q\x12 ", b"\x01U\x12 ")):
            return None
        if not tree_link(right) or not 0 <= p <= len(prev):
            return None
        key = prev[:p] + suffix
        if key <= prev or (p < len(prev) and suffix[:1] == prev[p : p + 1]):
            return None
        if not _key_ok(key):
            return None
        keys.append(key)
        vals.append(bytes(value))
        links.append(right)
    heights = {_height(k) for k in keys}
    if len(heights) > 1:
        return None
    fields = (tuple(keys), tuple(vals), tuple(None if x is None else bytes(x) for x in links))
    return fields, heights.pop() if heights else None, encode_fields(fields)[1]


def _tagged(cid: bytes) -> bytes:
    """Tag 42 over a byte string of 0x00 and `cid`, however malformed `cid` is."""
    n = len(cid) + 1
    head = bytes((0x40 | n,)) if n < 24 else bytes((0x58, n))
    return b"\xd8\x2a" + head + b"\x00" + cid


DIGEST = bytes(range(32))
# Link encodings for any link position (`l`, `t`, `v`): good ones of each codec, and the ways a
# CID or its wrapping can be wrong, the empty CID of the issue (d8 2a 41 00) first.
LINKS = [
    _tagged(b""),
    b"\xd8\x2a\x40",  # an empty byte string: not even the 0x00 prefix
    _tagged(b"\x01"),
    _tagged(b"\x01\x71\x12\x20" + DIGEST),  # good: dag-cbor
    _tagged(b"\x01\x55\x12\x20" + DIGEST),  # good for a value: raw
    _tagged(b"\x01\x70\x12\x20" + DIGEST),  # dag-pb
    _tagged(b"\x12\x20" + DIGEST),  # CIDv0
    _tagged(b"\x01\x71\x13\x40" + DIGEST * 2),  # sha2-512
    _tagged(b"\x01\x71\x12\x1f" + DIGEST[:31]),  # short digest
    _tagged(b"\x01\x71\x12\x20" + DIGEST + b"\x00"),  # a byte too many
    _tagged(b"\x01\x71\x00\x20" + DIGEST),  # identity hash
    b"\xd8\x2a\x58\x25\x01\x01\x71\x12\x20" + DIGEST,  # prefix 0x01, not 0x00
    b"\xd8\x2b\x58\x25\x00\x01\x71\x12\x20" + DIGEST,  # tag 43
    b"\xd8\x2a\x78\x25" + bytes(37),  # tag 42 over text
    b"\xf6",
    b"\xf5",
]


def _replace_link(data: bytearray, rng: random.Random) -> None:
    """Swap one link of the node (a 41-byte one or a null `l`/`t`) for one of LINKS."""
    starts = [m.start() for m in re.finditer(rb"\xd8\x2aX\x25\x00", data)]
    starts += [m.start() + 2 for m in re.finditer(rb"\x61[lt]\xf6", data)]
    if starts:
        at = rng.choice(starts)
        data[at : at + (1 if data[at] == 0xF6 else 41)] = rng.choice(LINKS)


def _mutate(data: bytearray, rng: random.Random) -> None:
    at = rng.randrange(len(data) + 1)
    kind = rng.randrange(6)
    if kind == 0 and at < len(data):
        data[at] ^= 1 << rng.randrange(8)
    elif kind == 1 and at < len(data):
        data[at] = rng.randrange(256)
    elif kind == 2:
        data[at:at] = bytes((rng.randrange(256),))
    elif kind == 3:
        del data[at : at + rng.randrange(1, 4)]
    elif kind == 4:
        del data[at:]
    else:
        _replace_link(data, rng)


def test_decoders_agree_with_a_generic_strict_decoder() -> None:
    """Mutated nodes of a real tree (bit flips, replaced, inserted and deleted bytes,
    truncations, and links of every position swapped for good and malformed ones): the C
    decoder and the Python one accept exactly what cbrrr's strict decoder and the schema
    accept, with the same fields, height and offsets."""
    keys = (INTEROP / "mst" / "example_keys.txt").read_text().split()
    store = NodeStore(MemoryBlockStore())
    root = tree.build(store, [(k, VALUES[i % 2]) for i, k in enumerate(keys)])
    blocks = [n[1] for n in _working_nodes(store, store.root(root.cid_bytes))]
    rng = random.Random(7)
    outcomes = {"accepted": 0, "rejected": 0, "link swaps accepted": 0, "link swaps": 0}
    for _ in range(30_000):
        data = bytearray(rng.choice(blocks))
        swap = rng.random() < 0.3
        if swap:
            _replace_link(data, rng)
        else:
            for _ in range(rng.choice((1, 1, 2, 3))):
                _mutate(data, rng)
        expected = _oracle(bytes(data))
        for impl in IMPLS.values():
            try:
                found = impl.decode_fields(bytes(data))
            except InvalidMst:
                found = None
            assert found == expected, (impl.__name__, bytes(data).hex())
        outcomes["rejected" if found is None else "accepted"] += 1
        outcomes["link swaps"] += swap
        outcomes["link swaps accepted"] += swap and found is not None
    assert min(outcomes.values()) > 1_000, outcomes


def test_without_the_c_module_the_python_decoder_serves_with_one_warning() -> None:
    """Installed without a C compiler: atcore.mst.node falls back to node_py with one log line,
    and trees, the PDS and the relay still load."""
    script = "\n".join(
        (
            "import logging, sys",
            "sys.modules['atcore.mst._node'] = None",  # its import now raises ImportError
            "logging.basicConfig(format='%(levelname)s %(name)s: %(message)s')",
            "from atcore.blockstore import MemoryBlockStore",
            "from atcore.cid import cid_for_cbor",
            "from atcore.mst import node, node_py, tree, walk",
            "assert node.decode_fields is node_py.decode_fields",
            "store = MemoryBlockStore()",
            "keys = [f'app.bsky.feed.post/{i:04d}' for i in range(300)]",
            "root = tree.build(store, [(k, cid_for_cbor(k.encode())) for k in keys])",
            "assert walk.validate_tree(store, root) == 300",
            "import pds.app, relay.app",
        )
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("WARNING atcore.mst.node: "), lines
    assert "pure-Python" in lines[0]

"""`skyloft repo inspect | verify | diff` on repositories built with atcore, good and tampered."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from atcore import cbor
from atcore.blockstore import MemoryBlockStore
from atcore.car import read_car, write_car
from atcore.cid import cid_for_cbor, parse_cid
from atcore.commit import create_commit
from atcore.keys import generate_k256
from atcore.mst import invert, tree, walk
from atcore.mst.diff import RecordOp
from atcore.repo import RepoHead, build_repo, export_blocks, read_head
from atcore.syntax.did import parse_did
from atcore.syntax.tid import TidClock

DID = parse_did("did:plc:ewvi7nxzyoun6zhxrhs64oiz")
KEY = generate_k256()


def post(i: int, suffix: str = "") -> dict[str, Any]:
    return {"$type": "app.bsky.feed.post", "text": f"post {i}{suffix}", "createdAt": "2026-11-29"}


def records(n: int, edited: bool = False) -> list[tuple[str, dict[str, Any]]]:
    clock = TidClock(now=iter(range(1_700_000_000_000_000, 1 << 53, 1000)).__next__, clock_id=1)
    out = [("app.bsky.actor.profile/self", {"$type": "app.bsky.actor.profile"})]
    for i in range(n):
        key = f"app.bsky.feed.post/{clock.next()}"
        if edited and i % 7 == 0:
            continue
        out.append((key, post(i, " edited" if edited and i % 5 == 0 else "")))
    if edited:
        out.append(("app.bsky.graph.follow/3kzzzzzzzzzz2", {"$type": "app.bsky.graph.follow"}))
    return out


def write_repo(path: Path, recs: list[tuple[str, dict[str, Any]]]) -> RepoHead:
    store = MemoryBlockStore()
    head = build_repo(store, DID, KEY, TidClock().next(), recs)
    path.write_bytes(write_car(head.root, export_blocks(store, head)))
    return head


def skyloft(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "skyloft", *args], capture_output=True, text=True, timeout=60
    )


@pytest.fixture(scope="module")
def repos(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("repos")
    old, new = folder / "old.car", folder / "new.car"
    write_repo(old, records(60))
    write_repo(new, records(60, edited=True))
    return old, new


def test_export_order_puts_the_commit_first(repos: tuple[Path, Path]) -> None:
    car = read_car(repos[0].read_bytes())
    first = next(iter(car.blocks))
    assert first == car.root
    assert set(cbor.decode(car.blocks[first])) == {"did", "version", "data", "rev", "prev", "sig"}


def test_inspect_summary_and_records(repos: tuple[Path, Path]) -> None:
    result = skyloft("repo", "inspect", str(repos[0]))
    assert result.returncode == 0, result.stderr
    assert f"did:      {DID}" in result.stdout
    assert "app.bsky.feed.post                       60" in result.stdout
    lines = skyloft("repo", "inspect", str(repos[0]), "--records").stdout.splitlines()
    assert len(lines) == 61
    first = json.loads(lines[0])
    assert first["uri"] == f"at://{DID}/app.bsky.actor.profile/self"
    assert first["value"] == {"$type": "app.bsky.actor.profile"}
    assert parse_cid(first["cid"]) == cid_for_cbor(cbor.encode(first["value"]))


def test_verify_with_and_without_key(repos: tuple[Path, Path]) -> None:
    ok = skyloft("repo", "verify", str(repos[0]), "--did-key", KEY.public_key().did_key())
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith(f"valid: {DID}") and "61 records" in ok.stdout
    assert "signature verified" in ok.stdout
    other = generate_k256().public_key().did_key()
    bad = skyloft("repo", "verify", str(repos[0]), "--did-key", other)
    assert bad.returncode == 1 and "signature does not verify" in bad.stderr


def _tamper(path: Path, out: Path, edit: Any) -> None:
    car = read_car(path.read_bytes())
    blocks = list(car.blocks.items())
    out.write_bytes(write_car(car.root, edit(blocks)))


def test_verify_rejects_tampering(repos: tuple[Path, Path], tmp_path: Path) -> None:
    raw = bytearray(repos[0].read_bytes())
    raw[-5] ^= 0x01
    flipped = tmp_path / "flipped.car"
    flipped.write_bytes(bytes(raw))
    result = skyloft("repo", "verify", str(flipped))
    assert result.returncode == 1
    assert "does not match its hash" in result.stderr and "Traceback" not in result.stderr

    truncated = tmp_path / "truncated.car"
    truncated.write_bytes(repos[0].read_bytes()[:-7])
    result = skyloft("repo", "verify", str(truncated))
    assert result.returncode == 1 and result.stderr.startswith("error: ")

    dropped = tmp_path / "dropped.car"
    _tamper(repos[0], dropped, lambda blocks: blocks[:-1])
    result = skyloft("repo", "verify", str(dropped))
    assert result.returncode == 1 and "missing block" in result.stderr


def test_verify_rejects_non_canonical_record(tmp_path: Path) -> None:
    store = MemoryBlockStore()
    sloppy = bytes.fromhex("a2616201616101")  # {"b": 1, "a": 1}: keys out of order
    cid = cid_for_cbor(sloppy)
    store.put(cid, sloppy)
    head = build_repo(store, DID, KEY, TidClock().next(), [])
    root = tree.put(store, head.data, "com.example.thing/self", cid)
    path = tmp_path / "sloppy.car"
    path.write_bytes(write_car(root, [(root, store.get(root)), (cid, sloppy)]))
    result = skyloft("repo", "verify", str(path))
    assert result.returncode == 1
    assert "com.example.thing/self" in result.stderr and "Traceback" not in result.stderr
    # atcore.cbor_diagnose says what is wrong, and where
    assert "map keys out of canonical order at $: 'b'" in result.stderr


def test_diff_ops_and_inductive_proof_inverts(repos: tuple[Path, Path]) -> None:
    result = skyloft("repo", "diff", *map(str, repos))
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    ops = out["record_ops"]
    assert [op["rpath"] for op in ops] == sorted(op["rpath"] for op in ops)
    kinds = {(op["old_value"] is None, op["new_value"] is None) for op in ops}
    assert kinds == {(True, False), (False, True), (False, False)}
    for name in ("created_nodes", "deleted_nodes", "proof_nodes", "firehose_cids"):
        assert out[name] == sorted(out[name]) and out[name]

    # A relay holding only the firehose blocks can invert the ops back to the old MST root.
    old, new = read_car(repos[0].read_bytes()), read_car(repos[1].read_bytes())
    firehose = {parse_cid(c) for c in out["firehose_cids"]}
    store = MemoryBlockStore((c, b) for c, b in new.blocks.items() if c in firehose)
    new_data = cbor.decode(new.blocks[new.root])["data"]
    record_ops = [
        RecordOp(
            op["rpath"],
            parse_cid(op["old_value"]) if op["old_value"] else None,
            parse_cid(op["new_value"]) if op["new_value"] else None,
        )
        for op in ops
    ]
    assert (
        invert.invert_ops(store, new_data, record_ops) == cbor.decode(old.blocks[old.root])["data"]
    )


def test_bad_paths_and_garbage(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.car"
    garbage.write_bytes(b"\xff" * 40)
    for args in (["inspect", str(tmp_path / "absent.car")], ["verify", str(garbage)]):
        result = skyloft("repo", *args)
        assert result.returncode == 1 and result.stderr.startswith("error: ")
        assert "Traceback" not in result.stderr


def _bare(path: Path, recs: list[tuple[str, dict[str, Any]]]) -> None:
    store = MemoryBlockStore()
    head = build_repo(store, DID, KEY, TidClock().next(), recs)
    bare = RepoHead(head.data, None, head.data)
    path.write_bytes(write_car(head.data, export_blocks(store, bare)))


def test_diff_and_inspect_of_bare_mst_roots(repos: tuple[Path, Path], tmp_path: Path) -> None:
    old, new = tmp_path / "old.car", tmp_path / "new.car"
    _bare(old, records(60))
    _bare(new, records(60, edited=True))
    signed = json.loads(skyloft("repo", "diff", *map(str, repos)).stdout)
    # A bare root has no commit block, so only the firehose list differs from the signed diff.
    commit = read_car(repos[1].read_bytes()).root.encode()
    for pair in ((old, new), (repos[0], new), (old, repos[1])):
        result = skyloft("repo", "diff", *map(str, pair))
        assert result.returncode == 0, result.stderr
        out = json.loads(result.stdout)
        for name in ("record_ops", "created_nodes", "deleted_nodes", "proof_nodes"):
            assert out[name] == signed[name]
        expected = set(signed["firehose_cids"]) - ({commit} if pair[1] == new else set())
        assert out["firehose_cids"] == sorted(expected)
        assert (pair[1] == new) != (commit in out["firehose_cids"])
    assert "bare MST, 61 records" in skyloft("repo", "verify", str(old)).stdout
    lines = skyloft("repo", "inspect", str(old), "--records").stdout.splitlines()
    assert json.loads(lines[0])["rpath"] == "app.bsky.actor.profile/self"


def _nodes_only(path: Path, keys: list[str], commit: bool) -> None:
    """A CAR of an MST whose records it does not hold: its root is a bare node, or a commit."""
    store = MemoryBlockStore()
    data = tree.build(store, [(k, cid_for_cbor(cbor.encode({"k": k}))) for k in keys])
    blocks = [(c, store.get(c)) for c in walk.iter_nodes(store, data)]
    root = data
    if commit:
        _, block, root = create_commit(DID, data, TidClock().next(), KEY)
        blocks.insert(0, (root, block))
    path.write_bytes(write_car(root, blocks))


@pytest.mark.parametrize("commit", [False, True], ids=["bare-root", "commit-root"])
def test_diff_of_cars_holding_only_mst_nodes(tmp_path: Path, commit: bool) -> None:
    """A diff reads no record: CARs of MST nodes alone diff like complete ones (the issue's
    k/00 keys; one key deleted, one created, one updated), and inspect still wants records."""
    old_keys = ["k/00", "k/12", "k/39", "k/48"]
    new_keys = ["k/00", "k/20", "k/39", "k/48"]
    old, new = tmp_path / "old.car", tmp_path / "new.car"
    _nodes_only(old, old_keys, commit)
    _nodes_only(new, new_keys, commit)
    result = skyloft("repo", "diff", str(old), str(new))
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    ops = {op["rpath"]: (op["old_value"], op["new_value"]) for op in out["record_ops"]}
    assert set(ops) == {"k/12", "k/20"}
    assert ops["k/12"][1] is None and ops["k/20"][0] is None
    assert out["created_nodes"] and out["deleted_nodes"] and out["proof_nodes"]
    # The same trees with their records diff to the same ops and node sets.
    full = tmp_path / "full-old.car", tmp_path / "full-new.car"
    for path, keys in zip(full, (old_keys, new_keys), strict=True):
        _bare(path, [(k, {"k": k}) for k in keys])
    complete = json.loads(skyloft("repo", "diff", *map(str, full)).stdout)
    for name in ("record_ops", "created_nodes", "deleted_nodes", "proof_nodes"):
        assert out[name] == complete[name]
    inspect = skyloft("repo", "inspect", str(old))
    assert inspect.returncode == 1 and "missing block" in inspect.stderr


def _bad_inputs(good: Path, folder: Path) -> dict[str, tuple[Path, str]]:
    """One broken copy of `good` per kind of bad input, with the message expected for it."""
    raw = good.read_bytes()
    car = read_car(raw)
    blocks = list(car.blocks.items())
    flipped = bytearray(raw)
    flipped[-5] ^= 0x01
    sloppy = bytes.fromhex("a2616201616101")  # {"b": 1, "a": 1}: keys out of order
    store = MemoryBlockStore(blocks)
    head = read_head(store, car.root)
    store.put(cid_for_cbor(sloppy), sloppy)
    root = tree.put(store, head.data, "com.example.thing/self", cid_for_cbor(sloppy))
    variants = {
        "truncated": (raw[:-7], "truncated"),
        "wrong-hash": (bytes(flipped), "does not match its hash"),
        "non-canonical": (write_car(root, export_blocks(store, read_head(store, root))), "key"),
        # The last block is a record, the second an MST node: both must be reported as missing.
        "missing-record": (write_car(car.root, blocks[:-1]), "missing block"),
        "missing-node": (write_car(car.root, [blocks[0], *blocks[2:]]), "missing block"),
    }
    out = {}
    for name, (data, message) in variants.items():
        (folder / f"{name}.car").write_bytes(data)
        out[name] = (folder / f"{name}.car", message)
    return out


COMMANDS = ["inspect", "inspect --records", "verify", "diff-old", "diff-new"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_rejects_bad_input(
    repos: tuple[Path, Path], tmp_path: Path, command: str
) -> None:
    for name, (bad, message) in _bad_inputs(repos[0], tmp_path).items():
        if command.startswith("diff"):
            # The other CAR holds every block the broken one lacks: each file stands alone.
            pair = (bad, repos[0]) if command == "diff-old" else (repos[0], bad)
            result = skyloft("repo", "diff", *map(str, pair))
        else:
            result = skyloft("repo", *command.split(), str(bad))
        assert result.returncode == 1, (name, result.stdout)
        assert result.stderr.startswith("error: ") and len(result.stderr.splitlines()) == 1
        assert message in result.stderr and "CID(" not in result.stderr, (name, result.stderr)

"""`skyloft repo inspect | verify | diff`: look into repository CAR files (spec-repository.md).

Every failure on bad input ends in exit status 1 and one line naming what was wrong: a domain
error from atcore (bad CAR, bad CBOR, bad MST, missing block) never becomes a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from atcore import cbor
from atcore.blockstore import MemoryBlockStore
from atcore.car import read_car
from atcore.cbor_diagnose import diagnose
from atcore.cid import CID
from atcore.commit import VERSION, verify_commit
from atcore.datamodel import to_json
from atcore.errors import MissingBlock
from atcore.keys import parse_did_key
from atcore.mst import diff as mst_diff
from atcore.mst import proof, walk
from atcore.repo import RepoHead, read_head


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    repo = sub.add_parser("repo", help="inspect, verify and diff repository CAR files")
    commands = repo.add_subparsers(dest="repo_command", required=True)

    inspect = commands.add_parser("inspect", help="root commit and record counts")
    inspect.add_argument("car", type=Path)
    inspect.add_argument("--records", action="store_true", help="one JSON line per record")
    inspect.set_defaults(run=_guarded(run_inspect))

    verify = commands.add_parser("verify", help="block hashes, MST structure, signature")
    verify.add_argument("car", type=Path)
    verify.add_argument("--did-key", help="verify the commit signature against this key")
    verify.set_defaults(run=_guarded(run_verify))

    diff = commands.add_parser("diff", help="record ops and node sets between two repos")
    diff.add_argument("old", type=Path)
    diff.add_argument("new", type=Path)
    diff.set_defaults(run=_guarded(run_diff))


def _guarded(command: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        try:
            result: int = command(args)
            return result
        except MissingBlock as exc:
            missing = exc.cid.encode() if isinstance(exc.cid, CID) else exc.cid
            print(f"error: missing block {missing}", file=sys.stderr)
        except (ValueError, OSError) as exc:
            print(f"error: {exc}", file=sys.stderr)
        return 1

    return run


def load(path: Path, nodes_only: bool = False) -> tuple[MemoryBlockStore, RepoHead, int]:
    """Read a CAR and check all of it; returns its blocks, head and number of records.

    Every block's hash, the root, the MST's canonical layout (sorted keys, heights, node
    schema) and every record's presence and strict DAG-CBOR; a root or record that is not
    canonical DAG-CBOR is named with what is wrong in it and where (atcore.cbor_diagnose).
    Each CAR is checked on its own, so a block missing from one file is reported even when
    the other file of a diff holds it.
    With `nodes_only` (a diff, which reads no record), a CAR holding no record at all is an
    MST-only CAR and passes without them; one holding some must hold them all.
    """
    with path.open("rb") as stream:
        car = read_car(stream)
    store = MemoryBlockStore(car.blocks.items())
    try:
        head = read_head(store, car.root)
    except ValueError as exc:
        why = diagnose(store.get(car.root)) if store.has(car.root) else None
        if why is None:
            raise
        raise ValueError(f"{path}: root block {car.root.encode()}: {exc}: {why}") from exc
    records = walk.validate_tree(store, head.data)
    entries = list(walk.walk(store, head.data))
    if nodes_only and not any(store.has(cid) for _, cid in entries):
        return store, head, records
    for key, cid in entries:
        try:
            cbor.decode(store.get(cid))
        except MissingBlock:
            raise MissingBlock(f"{cid.encode()} (record {key}) in {path}") from None
        except ValueError as exc:
            why = diagnose(store.get(cid))
            detail = exc if why is None else f"{exc}: {why}"
            raise ValueError(f"{path}: record {key} ({cid.encode()}): {detail}") from exc
    return store, head, records


def run_inspect(args: argparse.Namespace) -> int:
    store, head, _ = load(args.car)
    if args.records:
        did = head.commit.did if head.commit else None
        for key, cid in walk.walk(store, head.data):
            line = {
                "uri": f"at://{did}/{key}" if did else None,
                "cid": cid.encode(),
                "value": to_json(cbor.decode(store.get(cid))),
            }
            if did is None:
                line["rpath"] = key
            print(json.dumps(line, ensure_ascii=False, separators=(",", ":")))
        return 0
    counts = Counter(key.split("/", 1)[0] for key, _ in walk.walk(store, head.data))
    if head.commit is not None:
        print(f"did:      {head.commit.did}")
        print(f"rev:      {head.commit.rev}")
        print(f"version:  {VERSION}")
        print(f"commit:   {head.root.encode()}")
    print(f"data:     {head.data.encode()}")
    print(f"records:  {sum(counts.values())}")
    for collection, count in sorted(counts.items()):
        print(f"  {collection:<40} {count}")
    return 0


def run_verify(args: argparse.Namespace) -> int:
    store, head, records = load(args.car)
    signature = "signature not checked (no --did-key)"
    if args.did_key:
        if head.commit is None:
            raise ValueError("--did-key given but the CAR root is a bare MST node, not a commit")
        if not verify_commit(head.commit, parse_did_key(args.did_key)):
            raise ValueError(f"commit {head.root.encode()}: signature does not verify")
        signature = "signature verified"
    who = f"{head.commit.did} rev {head.commit.rev}" if head.commit else "bare MST"
    print(f"valid: {who}, {records} records, {len(store)} blocks, {signature}")
    return 0


def run_diff(args: argparse.Namespace) -> int:
    old_store, old, _ = load(args.old, nodes_only=True)
    new_store, new, _ = load(args.new, nodes_only=True)
    store = MemoryBlockStore([*old_store, *new_store])
    result = mst_diff.diff(store, old.data, new.data)
    ops = result.record_ops
    written = [op.key for op in ops if op.new is not None]
    deleted = [op.key for op in ops if op.new is None]
    proofs: set[CID] = set()
    for key in written + deleted:
        proofs |= proof.proof_nodes(store, new.data, key)
    inductive = proof.inductive_proof_nodes(store, new.data, ops)
    firehose = result.created_nodes | {op.new for op in ops if op.new is not None} | inductive
    if new.commit is not None:
        firehose.add(new.root)
    print(
        json.dumps(
            {
                "record_ops": [
                    {
                        "rpath": op.key,
                        "old_value": op.old.encode() if op.old else None,
                        "new_value": op.new.encode() if op.new else None,
                    }
                    for op in sorted(ops, key=lambda op: op.key)
                ],
                "created_nodes": _sorted(result.created_nodes),
                "deleted_nodes": _sorted(result.deleted_nodes),
                "proof_nodes": _sorted(proofs),
                "inductive_proof_nodes": _sorted(inductive),
                "firehose_cids": _sorted(firehose),
            },
            indent=2,
        )
    )
    return 0


def _sorted(cids: set[CID]) -> list[str]:
    return sorted(cid.encode() for cid in cids)

"""`skyloft repo inspect | verify | diff` on repositories built and exported by @atproto/repo."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from atcore import cbor
from atcore.car import read_car, write_car
from atcore.cid import CID, cid_for_cbor, parse_cid
from tests.interop.conftest import run_node

pytestmark = pytest.mark.integration

# getFullRepo's walk order and the PDS's storage order, for each version; v2 with stale blocks.
CARS = ("v1Full", "v1Store", "v2Full", "v2Store", "v2History")
Blocks = list[tuple[CID, bytes]]


@pytest.fixture(scope="module")
def official(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("official")
    paths = {name: str(folder / f"{name}.car") for name in CARS}
    made: dict[str, Any] = run_node("make_repo.mjs", paths)
    made["paths"] = {name: Path(path) for name, path in paths.items()}
    return made


def skyloft(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "skyloft", "repo", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def version(name: str) -> str:
    return name[:2]


@pytest.mark.parametrize("name", CARS)
def test_verify_accepts_the_official_export(official: dict[str, Any], name: str) -> None:
    expected = official[version(name)]
    assert len(expected["records"]) > 300
    result = skyloft("verify", official["paths"][name], "--did-key", official["didKey"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"valid: {official['did']} rev {expected['rev']}, ")
    assert f", {len(expected['records'])} records, " in result.stdout
    assert result.stdout.rstrip().endswith("signature verified")


@pytest.mark.parametrize("name", CARS)
def test_inspect_lists_exactly_the_official_records(official: dict[str, Any], name: str) -> None:
    expected = official[version(name)]
    result = skyloft("inspect", official["paths"][name], "--records")
    assert result.returncode == 0, result.stderr
    assert [json.loads(line) for line in result.stdout.splitlines()] == expected["records"]

    summary = skyloft("inspect", official["paths"][name])
    assert summary.returncode == 0, summary.stderr
    assert f"commit:   {expected['commit']}" in summary.stdout
    assert f"records:  {len(expected['records'])}" in summary.stdout
    collections = Counter(r["uri"].split("/")[3] for r in expected["records"])
    assert len(collections) == {"v1": 4, "v2": 5}[version(name)]
    for collection, count in collections.items():
        assert f"  {collection:<40} {count}\n" in summary.stdout


@pytest.mark.parametrize(("old", "new"), [("v1Full", "v2Full"), ("v1Store", "v2History")])
def test_diff_gives_the_changes_the_script_made(
    official: dict[str, Any], old: str, new: str
) -> None:
    before = {r["uri"].split("/", 3)[3]: r["cid"] for r in official["v1"]["records"]}
    after = {r["uri"].split("/", 3)[3]: r["cid"] for r in official["v2"]["records"]}
    touched = {op["path"] for op in official["ops"]}
    # Records the script did not write are unchanged; an update then delete nets to a delete.
    assert {k: v for k, v in before.items() if k not in touched} == {
        k: v for k, v in after.items() if k not in touched
    }
    expected = [
        {"rpath": path, "old_value": before.get(path), "new_value": after.get(path)}
        for path in sorted(touched)
    ]
    assert {op["action"] for op in official["ops"]} == {"create", "update", "delete"}

    result = skyloft("diff", official["paths"][old], official["paths"][new])
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["record_ops"] == expected


def _mst_nodes(blocks: Blocks, data: CID) -> list[CID]:
    """CIDs of the MST nodes below the root node (decoded as `{l, e}` maps)."""
    nodes = []
    for cid, raw in blocks:
        if cid != data and cid.is_cidv1_dag_cbor_sha256_32():
            value = cbor.decode(raw)
            if isinstance(value, dict) and set(value) == {"l", "e"}:
                nodes.append(cid)
    return nodes


def _flip_record(blocks: Blocks, record: CID) -> tuple[Blocks, str]:
    out = [(cid, raw[:-1] + bytes([raw[-1] ^ 1]) if cid == record else raw) for cid, raw in blocks]
    return out, record.encode()


def _drop_node(blocks: Blocks, data: CID) -> tuple[Blocks, str]:
    node = _mst_nodes(blocks, data)[0]
    return [(cid, raw) for cid, raw in blocks if cid != node], f"missing block {node.encode()}"


@pytest.mark.parametrize("name", ["v1Full", "v2Store"])
@pytest.mark.parametrize("tamper", ["flip-record", "drop-node", "truncate", "forge-commit"])
def test_verify_rejects_tampered_official_exports(
    official: dict[str, Any], tmp_path: Path, name: str, tamper: str
) -> None:
    path = official["paths"][name]
    raw = path.read_bytes()
    car = read_car(raw)
    blocks: Blocks = list(car.blocks.items())
    commit = cbor.decode(car.blocks[car.root])
    assert isinstance(commit, dict)
    record = parse_cid(official[version(name)]["records"][7]["cid"])
    # A commit with another rev under its own (correct) CID, signed by nobody.
    forged = {**commit, "rev": "3zzzzzzzzzzzz"}
    forged_cid = cid_for_cbor(cbor.encode(forged))
    edits: dict[str, Callable[[], tuple[Blocks, str]]] = {
        "flip-record": lambda: _flip_record(blocks, record),
        "drop-node": lambda: _drop_node(blocks, commit["data"]),
        "truncate": lambda: (blocks, "truncated"),
        "forge-commit": lambda: ([(forged_cid, cbor.encode(forged)), *blocks], "signature"),
    }
    changed, reason = edits[tamper]()
    root = forged_cid if tamper == "forge-commit" else car.root
    bad = tmp_path / "bad.car"
    data = write_car(root, changed)
    bad.write_bytes(data[: len(raw) - 9] if tamper == "truncate" else data)

    result = skyloft("verify", bad, "--did-key", official["didKey"])
    assert result.returncode == 1, result.stdout
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert reason in result.stderr, result.stderr

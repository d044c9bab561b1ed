"""Run the scripted session against the official appview (bench/js/reference_appview.mjs:
@atproto/dev-env's PLC, PDS and @atproto/bsky) with our appview indexing the same PDS, and print
every read whose normalised answers differ. `--record` stores the reference's answers in
tests/appview_diff/recorded/reference.json for the Node-free replay test.

    .venv/bin/python -m tests.appview_diff.compare [--record]

Needs PostgreSQL (DB_POSTGRES_URL, default the machine's `test` database) and Redis (REDIS_HOST,
default 127.0.0.1:6379) for the reference appview."""

from __future__ import annotations

import argparse
import difflib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from skyloft.services import ServiceProcess
from tests.appview_diff.session import (
    Session,
    read_all,
    run_session,
    wait_indexed,
    without_missing,
)

ROOT = Path(__file__).resolve().parents[2]
RECORDED = Path(__file__).parent / "recorded" / "reference.json"


def start_reference() -> tuple[subprocess.Popen[str], dict[str, str]]:
    env = {
        "DB_POSTGRES_URL": "postgresql://postgres@127.0.0.1:5432/test",
        "REDIS_HOST": "127.0.0.1:6379",
        **os.environ,
    }
    node = subprocess.Popen(
        ["node", "reference_appview.mjs"],
        cwd=ROOT / "bench" / "js",
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        text=True,
    )
    assert node.stdout is not None
    line = node.stdout.readline()
    if not line:
        raise SystemExit(f"the reference network did not start (exit {node.wait()})")
    return node, json.loads(line)


@contextmanager
def both_appviews() -> Iterator[tuple[Session, dict[str, str], dict[str, tuple[str, str]]]]:
    """The reference network and our appview indexing its PDS, with the scripted session run
    and indexed by both; yields the session, the reference network's URLs and each appview's
    (URL, service DID) by name ("reference", "skyloft"). Both are stopped on the way out."""
    node, ref = start_reference()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            env = {
                "BSKY_REPO_PROVIDER": ref["pds"],
                "BSKY_DID_PLC_URL": ref["plc"],
                "BSKY_DEV_MODE": "true",
            }
            ours = ServiceProcess("appview", Path(tmp) / "appview", env=env)
            try:
                our_did = httpx.get(f"{ours.url}/.well-known/did.json").json()["id"]
                session = run_session(ref["pds"], pace=0.2)
                wait_indexed(session, ref["bsky"])
                wait_indexed(session, ours.url)
                yield (
                    session,
                    ref,
                    {"reference": (ref["bsky"], ref["bskyDid"]), "skyloft": (ours.url, our_did)},
                )
            finally:
                ours.stop()
    finally:
        assert node.stdin is not None
        node.stdin.close()
        node.wait(60)


def differences(ours: dict[str, Any], reference: dict[str, Any]) -> list[str]:
    """A unified diff of each read whose answers differ (reference first)."""
    out = []
    for name in reference:
        want = json.dumps(reference[name], indent=1).splitlines()
        got = json.dumps(ours.get(name), indent=1).splitlines()
        if want != got:
            diff = difflib.unified_diff(want, got, "reference", "ours", n=2, lineterm="")
            out.append(f"== {name}\n" + "\n".join(diff))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--record", action="store_true", help="store the reference's answers")
    parser.add_argument("--all", action="store_true", help="show the NOT_YET fields' diffs too")
    args = parser.parse_args()
    with both_appviews() as (session, _, sides):
        reference = read_all(session, *sides["reference"])
        mine = read_all(session, *sides["skyloft"])
    if args.record:
        RECORDED.write_text(json.dumps(reference, indent=1, sort_keys=True) + "\n")
    found = differences(mine, reference if args.all else without_missing(reference))
    print("\n\n".join(found))
    print(f"{len(reference) - len(found)} of {len(reference)} reads answer the same")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())

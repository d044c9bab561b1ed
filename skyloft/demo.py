"""The main job until the network exists: build a signed example repository, then inspect,
verify and diff it with `skyloft repo` — every byte made by Skyloft's own code.

Run: ./run [--out DIR] [--posts N]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from atcore.blockstore import MemoryBlockStore
from atcore.car import write_car
from atcore.identity.plc import did_for_genesis, genesis_op, sign_operation
from atcore.keys import generate_k256
from atcore.repo import build_repo, export_blocks
from atcore.syntax.did import parse_did
from atcore.syntax.tid import TidClock
from skyloft.cli import main as skyloft

CREATED = "2026-11-29T12:00:00.000Z"


def example_records(clock: TidClock, posts: int, edited: bool) -> list[tuple[str, dict[str, Any]]]:
    records: list[tuple[str, dict[str, Any]]] = [
        (
            "app.bsky.actor.profile/self",
            {
                "$type": "app.bsky.actor.profile",
                "displayName": "Skyloft demo" + (" (edited)" if edited else ""),
                "description": "A repository built by `skyloft.demo`.",
            },
        )
    ]
    for i in range(posts):
        if edited and i % 10 == 3:
            continue
        text = f"Post number {i} from the Skyloft demo" + (" (edited)" if edited and i == 0 else "")
        records.append(
            (
                f"app.bsky.feed.post/{clock.next()}",
                {"$type": "app.bsky.feed.post", "text": text, "createdAt": CREATED},
            )
        )
    return records


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("data/demo"))
    parser.add_argument("--posts", type=int, default=200)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    signing, rotation = generate_k256(), generate_k256()
    genesis = sign_operation(
        genesis_op(
            signing_key=signing.public_key().did_key(),
            rotation_keys=[rotation.public_key().did_key()],
            handle="demo.skyloft.test",
            pds="https://pds.skyloft.test",
        ),
        rotation,
    )
    did = parse_did(did_for_genesis(genesis))
    paths = []
    for version, edited in (("v1", False), ("v2", True)):
        # The same TID sequence for both versions, so v2 edits and deletes v1's records.
        store = MemoryBlockStore()
        clock = TidClock(now=iter(range(1_764_000_000_000_000, 1 << 53, 1000)).__next__, clock_id=7)
        records = example_records(clock, args.posts, edited)
        head = build_repo(store, did, signing, TidClock().next(), records)
        path = args.out / f"example-{version}.car"
        path.write_bytes(write_car(head.root, export_blocks(store, head)))
        paths.append(str(path))
        print(f"wrote {path} ({path.stat().st_size:,} bytes, {len(records)} records)")

    did_key = signing.public_key().did_key()
    steps = [
        ["repo", "inspect", paths[0]],
        ["repo", "verify", paths[0], "--did-key", did_key],
        ["repo", "verify", paths[1], "--did-key", did_key],
    ]
    for step in steps:
        print(f"\n$ skyloft {' '.join(step)}", flush=True)
        if skyloft(step) != 0:
            return 1
    print(f"\n$ skyloft repo diff {paths[0]} {paths[1]}   (written to {args.out}/diff.json)")
    with (args.out / "diff.json").open("w") as out:
        stdout, sys.stdout = sys.stdout, out
        try:
            status = skyloft(["repo", "diff", *paths])
        finally:
            sys.stdout = stdout
    print((args.out / "diff.json").read_text()[:600] + "...")
    return status


if __name__ == "__main__":
    sys.exit(main())

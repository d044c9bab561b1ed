"""com.atproto.sync.* over the in-process PDS: exports that verify, proofs, listings."""

from __future__ import annotations

from typing import Any

import pytest

from atcore.blockstore import MemoryBlockStore
from atcore.car import read_car
from atcore.commit import verify_commit
from atcore.errors import MissingBlock
from atcore.mst import tree, walk
from atcore.repo import export_blocks, read_head
from atcore.syntax.tid import TidClock
from tests.pds.conftest import Pds

POST = "app.bsky.feed.post"
CLOCK = TidClock()


def post(text: str) -> dict[str, Any]:
    return {"$type": POST, "text": text, "createdAt": "2024-05-01T12:00:00.000Z"}


async def populated(pds: Pds, handle: str, n: int) -> tuple[str, str, list[str]]:
    created = await pds.create_account(handle)
    did, token = created["did"], created["accessJwt"]
    rkeys = [str(CLOCK.next()) for _ in range(n)]
    for i in range(0, n, 50):
        writes = [
            {
                "$type": "com.atproto.repo.applyWrites#create",
                "collection": POST,
                "rkey": k,
                "value": post(k),
            }
            for k in rkeys[i : i + 50]
        ]
        r = await pds.call(
            "com.atproto.repo.applyWrites", {"repo": did, "writes": writes}, token=token
        )
        assert r.status_code == 200, r.text
    return did, token, rkeys


async def test_get_repo_exports_a_verifiable_repo(pds: Pds) -> None:
    did, token, rkeys = await populated(pds, "alice.test", 120)
    latest = (await pds.call("com.atproto.sync.getLatestCommit", params={"did": did})).json()
    r = await pds.call("com.atproto.sync.getRepo", params={"did": did})
    assert r.status_code == 200 and r.headers["content-type"] == "application/vnd.ipld.car"
    car = read_car(r.content)
    assert car.root.encode() == latest["cid"]
    assert next(iter(car.blocks)) == car.root  # commit block first
    store = MemoryBlockStore(car.blocks.items())
    head = read_head(store, car.root)
    assert head.commit is not None and head.commit.rev == latest["rev"]
    key = await pds.ctx.actors.signing_key(did)
    assert verify_commit(head.commit, key.public_key())
    assert walk.validate_tree(store, head.data) == len(rkeys)
    assert sorted(k for k, _ in walk.walk(store, head.data)) == [f"{POST}/{k}" for k in rkeys]
    # Commit, then MST nodes in pre-order with each node's records after it (spec-repository).
    assert list(car.blocks) == [cid for cid, _ in export_blocks(store, head)]
    again = await pds.call("com.atproto.sync.getRepo", params={"did": did})
    assert again.content == r.content  # deterministic

    since = latest["rev"]
    update = await pds.call(
        "com.atproto.repo.putRecord",
        {"repo": did, "collection": POST, "rkey": rkeys[0], "record": post("new")},
        token=token,
    )
    diff = read_car(
        (await pds.call("com.atproto.sync.getRepo", params={"did": did, "since": since})).content
    )
    assert diff.root.encode() == update.json()["commit"]["cid"]
    assert diff.root in diff.blocks and update.json()["cid"] in {c.encode() for c in diff.blocks}
    assert len(diff.blocks) < len(car.blocks) // 4


async def test_get_record_proves_presence_and_absence(pds: Pds) -> None:
    did, _, rkeys = await populated(pds, "alice.test", 60)
    for rkey, present in ((rkeys[17], True), (str(CLOCK.next()), False)):
        r = await pds.call(
            "com.atproto.sync.getRecord", params={"did": did, "collection": POST, "rkey": rkey}
        )
        assert r.status_code == 200
        car = read_car(r.content)
        store = MemoryBlockStore(car.blocks.items())
        head = read_head(store, car.root)
        value = tree.get(store, head.data, f"{POST}/{rkey}")  # only the CAR's blocks
        assert (value is not None) == present
        if present:
            assert value in car.blocks
        assert len(car.blocks) < 10
    # A CAR without the path cannot prove anything.
    stripped = MemoryBlockStore([(car.root, car.blocks[car.root])])
    with pytest.raises(MissingBlock):
        tree.get(stripped, read_head(store, car.root).data, f"{POST}/{rkeys[0]}")


async def test_blocks_listings_and_status(pds: Pds) -> None:
    did, _, _ = await populated(pds, "alice.test", 3)
    other, _, _ = await populated(pds, "bob.test", 1)
    latest = (await pds.call("com.atproto.sync.getLatestCommit", params={"did": did})).json()
    r = await pds.call("com.atproto.sync.getBlocks", params={"did": did, "cids": [latest["cid"]]})
    assert r.status_code == 200
    assert [c.encode() for c in read_car(r.content).blocks] == [latest["cid"]]
    absent = "bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpa"
    r = await pds.call("com.atproto.sync.getBlocks", params={"did": did, "cids": [absent]})
    assert r.status_code == 400

    listed = (await pds.call("com.atproto.sync.listRepos", params={"limit": 1})).json()
    assert len(listed["repos"]) == 1 and "cursor" in listed
    rest = (
        await pds.call("com.atproto.sync.listRepos", params={"cursor": listed["cursor"]})
    ).json()
    repos = listed["repos"] + rest["repos"]
    assert sorted(r["did"] for r in repos) == sorted([did, other])
    for repo in repos:
        assert repo["active"] is True and "status" not in repo

    status = (await pds.call("com.atproto.sync.getRepoStatus", params={"did": did})).json()
    assert status == {"did": did, "active": True, "rev": latest["rev"]}
    nobody = "did:plc:nobody4567abcdefghijklmn"
    for nsid in ("getRepoStatus", "getLatestCommit", "getRepo"):
        r = await pds.call(f"com.atproto.sync.{nsid}", params={"did": nobody})
        assert r.status_code == 400 and r.json()["error"] == "RepoNotFound"

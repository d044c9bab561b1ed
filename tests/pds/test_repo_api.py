"""com.atproto.repo.* over the in-process PDS: shapes, paging, swaps and errors."""

from __future__ import annotations

from typing import Any

from atcore.syntax.tid import TidClock
from tests.pds.conftest import Pds

POST = "app.bsky.feed.post"
CLOCK = TidClock()


def post(text: str) -> dict[str, Any]:
    return {"$type": POST, "text": text, "createdAt": "2024-05-01T12:00:00.000Z"}


async def account(pds: Pds, handle: str) -> tuple[str, str]:
    created = await pds.create_account(handle)
    return created["did"], created["accessJwt"]


async def test_record_lifecycle(pds: Pds) -> None:
    did, token = await account(pds, "alice.test")
    r = await pds.call(
        "com.atproto.repo.createRecord",
        {"repo": did, "collection": POST, "record": post("hello")},
        token=token,
    )
    assert r.status_code == 200, r.text
    created = r.json()
    assert created["uri"].startswith(f"at://{did}/{POST}/")
    assert created["validationStatus"] == "valid"
    assert set(created["commit"]) == {"cid", "rev"}
    rkey = created["uri"].rsplit("/", 1)[1]
    got = await pds.call(
        "com.atproto.repo.getRecord",
        params={"repo": "alice.test", "collection": POST, "rkey": rkey},
    )
    assert got.status_code == 200
    assert got.json() == {"uri": created["uri"], "cid": created["cid"], "value": post("hello")}

    put = await pds.call(
        "com.atproto.repo.putRecord",
        {
            "repo": did,
            "collection": POST,
            "rkey": rkey,
            "record": post("edited"),
            "swapRecord": created["cid"],
        },
        token=token,
    )
    assert put.status_code == 200, put.text
    assert put.json()["commit"]["rev"] > created["commit"]["rev"]
    stale = await pds.call(
        "com.atproto.repo.putRecord",
        {
            "repo": did,
            "collection": POST,
            "rkey": rkey,
            "record": post("again"),
            "swapRecord": created["cid"],
        },
        token=token,
    )
    assert stale.status_code == 400 and stale.json()["error"] == "InvalidSwap"
    bad_commit = await pds.call(
        "com.atproto.repo.createRecord",
        {
            "repo": did,
            "collection": POST,
            "record": post("x"),
            "swapCommit": created["commit"]["cid"],
        },
        token=token,
    )
    assert bad_commit.status_code == 400 and bad_commit.json()["error"] == "InvalidSwap"

    deleted = await pds.call(
        "com.atproto.repo.deleteRecord",
        {"repo": did, "collection": POST, "rkey": rkey},
        token=token,
    )
    assert deleted.status_code == 200 and "commit" in deleted.json()
    again = await pds.call(
        "com.atproto.repo.deleteRecord",
        {"repo": did, "collection": POST, "rkey": rkey},
        token=token,
    )
    assert again.status_code == 200 and again.json() == {}
    missing = await pds.call(
        "com.atproto.repo.getRecord", params={"repo": did, "collection": POST, "rkey": rkey}
    )
    assert missing.status_code == 400 and missing.json()["error"] == "RecordNotFound"


async def test_writes_need_own_repo_and_valid_records(pds: Pds) -> None:
    did, token = await account(pds, "alice.test")
    other, _ = await account(pds, "bob.test")
    body = {"repo": other, "collection": POST, "record": post("x")}
    r = await pds.call("com.atproto.repo.createRecord", body, token=token)
    assert r.status_code == 401 and r.json()["error"] == "AuthenticationRequired"
    r = await pds.call("com.atproto.repo.createRecord", {**body, "repo": did})
    assert r.status_code == 401 and r.json()["error"] == "AuthMissing"
    huge = {**body, "repo": did, "record": post("x" * 200_000)}
    r = await pds.call("com.atproto.repo.createRecord", huge, token=token)
    assert r.status_code == 413 and r.json()["error"] == "PayloadTooLarge"
    r = await pds.call(
        "com.atproto.repo.createRecord",
        {"repo": did, "collection": POST, "record": {"$type": POST, "text": 5}},
        token=token,
    )
    assert r.status_code == 400 and r.json()["error"] == "InvalidRequest"
    r = await pds.call(
        "com.atproto.repo.createRecord",
        {"repo": did, "collection": "com.example.unknown", "record": {"n": 1}},
        token=token,
    )
    assert r.status_code == 200 and r.json()["validationStatus"] == "unknown"
    unknown = {"repo": did, "collection": "com.example.unknown", "record": {"n": 2}}
    r = await pds.call("com.atproto.repo.createRecord", {**unknown, "validate": True}, token=token)
    assert r.status_code == 400 and "Lexicon not found" in r.json()["message"]
    r = await pds.call("com.atproto.repo.createRecord", {**unknown, "validate": False}, token=token)
    assert r.status_code == 200 and "validationStatus" not in r.json()
    describe = await pds.call("com.atproto.repo.describeRepo", params={"repo": did})
    assert describe.status_code == 200
    assert describe.json()["collections"] == ["com.example.unknown"]
    assert describe.json()["handle"] == "alice.test"


async def test_apply_writes_and_list_records(pds: Pds) -> None:
    did, token = await account(pds, "alice.test")
    rkeys = [str(CLOCK.next()) for _ in range(7)]
    writes = [
        {
            "$type": "com.atproto.repo.applyWrites#create",
            "collection": POST,
            "rkey": k,
            "value": post(f"p{i}"),
        }
        for i, k in enumerate(rkeys)
    ]
    r = await pds.call("com.atproto.repo.applyWrites", {"repo": did, "writes": writes}, token=token)
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["$type"] for x in results] == ["com.atproto.repo.applyWrites#createResult"] * 7
    mixed = [
        {
            "$type": "com.atproto.repo.applyWrites#update",
            "collection": POST,
            "rkey": rkeys[0],
            "value": post("u"),
        },
        {"$type": "com.atproto.repo.applyWrites#delete", "collection": POST, "rkey": rkeys[1]},
    ]
    r = await pds.call("com.atproto.repo.applyWrites", {"repo": did, "writes": mixed}, token=token)
    assert [x["$type"].rsplit("#")[1] for x in r.json()["results"]] == [
        "updateResult",
        "deleteResult",
    ]
    # An update of a record that does not exist fails the whole batch, as the reference's does.
    head = (await pds.call("com.atproto.sync.getLatestCommit", params={"did": did})).json()
    missing = {**mixed[0], "rkey": rkeys[1]}
    batch = {"repo": did, "writes": [{**mixed[0], "value": post("lost")}, missing]}
    r = await pds.call("com.atproto.repo.applyWrites", batch, token=token)
    assert r.status_code == 400, r.text
    assert r.json() == {
        "error": "InvalidRequest",
        "message": f"Could not find a record with key: {POST}/{rkeys[1]}",
    }
    assert (await pds.call("com.atproto.sync.getLatestCommit", params={"did": did})).json() == head
    too_many = [writes[0]] * 201
    r = await pds.call(
        "com.atproto.repo.applyWrites", {"repo": did, "writes": too_many}, token=token
    )
    assert r.status_code == 400

    remaining = sorted(set(rkeys) - {rkeys[1]})
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"repo": did, "collection": POST, "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await pds.call("com.atproto.repo.listRecords", params=params)).json()
        seen += [rec["uri"].rsplit("/", 1)[1] for rec in page["records"]]
        cursor = page.get("cursor")
        if not cursor:
            break
    assert seen == sorted(remaining, reverse=True)  # newest first by default
    rev = await pds.call(
        "com.atproto.repo.listRecords",
        params={"repo": did, "collection": POST, "reverse": "true", "limit": 100},
    )
    assert [x["uri"].rsplit("/", 1)[1] for x in rev.json()["records"]] == remaining
    assert "cursor" not in rev.json()

"""@atproto/api drives a live PDS; @atproto/repo verifies its exported repo and record proofs."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest

from atcore.cid import cid_for_raw
from tests.interop.conftest import JWT_SECRET, PASSWORD, run_node
from tests.interop.history import CREATED_AT, POST, WRITE, cid_of, png, post

pytestmark = pytest.mark.integration

# Record keys for the applyWrites step: post keys must be TIDs.
RKEYS = ["3l2aaaaaaaaa2", "3l2aaaaaaaab2"]


def test_atproto_api_agent_session_records_and_blobs(pds_url: str, plc_url: str) -> None:
    image = png()
    steps = run_node(
        "api_session.mjs",
        {
            "service": pds_url,
            "serviceDid": "did:web:localhost",
            "jwtSecret": JWT_SECRET,
            "handle": "agent.test",
            "email": "agent@example.com",
            "password": PASSWORD,
            "png": base64.b64encode(image).decode(),
            "rkeys": RKEYS,
        },
    )
    failed = {name: step["error"] for name, step in steps.items() if "error" in step}
    assert failed == {"getDeletedRecord": failed.get("getDeletedRecord")}, failed
    assert failed["getDeletedRecord"]["error"] == "RecordNotFound"
    got = {name: step["ok"] for name, step in steps.items() if "ok" in step}

    did = got["createAccount"]["did"]
    assert did.startswith("did:plc:")
    assert got["createAccount"] == {"did": did, "handle": "agent.test", "hasTokens": True}
    assert got["getSession"] == {
        "did": did,
        "handle": "agent.test",
        "email": "agent@example.com",
        "active": True,
    }

    first = got["createRecord"]
    uri = first["uri"]
    assert uri.startswith(f"at://{did}/{POST}/")
    hello = post("hello from @atproto/api")
    assert first["cid"] == cid_of(hello)
    assert got["getRecord"] == {"uri": uri, "cid": first["cid"], "value": hello}
    assert got["listRecords"] == {"records": [got["getRecord"]]}
    edited = post("edited by @atproto/api")
    assert got["putRecord"] == {"uri": uri, "cid": cid_of(edited)}
    assert got["getRecordAfterPut"] == {"uri": uri, "cid": cid_of(edited), "value": edited}

    blob = {
        "$type": "blob",
        "ref": {"$link": cid_for_raw(image).encode()},
        "mimeType": "image/png",
        "size": len(image),
    }
    assert got["uploadBlob"] == blob
    embed = {
        "$type": "app.bsky.embed.images",
        "images": [{"image": blob, "alt": "a tiny png", "aspectRatio": {"width": 1, "height": 1}}],
    }
    with_image = post("with an image", embed=embed)
    image_post = got["createImagePost"]
    assert image_post["cid"] == cid_of(with_image)
    assert got["getImagePost"] == {**image_post, "value": with_image}
    assert got["getBlob"] == {
        "base64": base64.b64encode(image).decode(),
        "contentType": "image/png",
    }

    applied = got["applyWrites"]
    assert [r["$type"].split("#")[1] for r in applied["results"]] == [
        "createResult",
        "createResult",
        "updateResult",
    ]
    assert [(r["uri"], r["cid"]) for r in applied["results"]] == [
        (f"at://{did}/{POST}/{RKEYS[0]}", cid_of(post("one"))),
        (f"at://{did}/{POST}/{RKEYS[1]}", cid_of(post("two"))),
        (uri, cid_of(post("edited by applyWrites"))),
    ]
    assert got["applyWritesDelete"]["results"] == [
        {"$type": "com.atproto.repo.applyWrites#deleteResult"}
    ]
    revs = [
        got["createRecord"]["rev"],
        applied["commit"]["rev"],
        got["applyWritesDelete"]["commit"]["rev"],
        got["deleteRecord"]["commit"]["rev"],
    ]
    assert revs == sorted(set(revs))

    assert got["refreshSession"] == {
        "did": did,
        "handle": "agent.test",
        "refreshChanged": True,
    }
    assert got["getSessionAfterRefresh"] == {"did": did, "handle": "agent.test"}
    assert got["getSessionWithExpiredToken"] == {"did": did, "refreshed": True}
    assert got["describeRepo"] == {
        "did": did,
        "handle": "agent.test",
        "collections": [POST],
        "handleIsCorrect": True,
        "didDocId": did,
    }
    # The agent moved to the endpoint our DID document names: the dev-mode public URL.
    port = pds_url.rsplit(":", 1)[1]
    assert got["login"] == {
        "did": did,
        "handle": "agent.test",
        "active": True,
        "pdsUrl": f"http://localhost:{port}/",
    }
    left = sorted(got["listRecordsAtEnd"]["records"], key=lambda r: r["uri"])
    assert left == [
        {"uri": f"at://{did}/{POST}/{RKEYS[0]}", "cid": cid_of(post("one")), "value": post("one")},
        got["getImagePost"],
    ]

    # The same account's repo, exported and checked by @atproto/repo, holds exactly these, and
    # the deleted posts' keys are proven absent.
    gone = [f"{POST}/{uri.rsplit('/', 1)[1]}", f"{POST}/{RKEYS[1]}"]
    verified = run_node(
        "repo_verify.mjs", {"service": pds_url, "plcUrl": plc_url, "did": did, "absent": gone}
    )
    assert "error" not in verified, verified
    exported = [(f"{r['collection']}/{r['rkey']}", r["cid"]) for r in verified["records"]]
    assert exported == [(r["uri"].split("/", 3)[3], r["cid"]) for r in left]
    assert all(p["verified"] for p in verified["proofs"]), verified["proofs"]
    assert [p["key"] for p in verified["proofs"][-2:]] == gone


def test_atproto_repo_verifies_the_export_and_every_record_proof(
    pds_url: str, plc_url: str
) -> None:
    with httpx.Client(base_url=pds_url, timeout=30) as client:
        account = {"handle": "exported.test", "email": "e@example.com", "password": PASSWORD}
        created = client.post("/xrpc/com.atproto.server.createAccount", json=account).json()
        did = created["did"]
        auth = {"authorization": f"Bearer {created['accessJwt']}"}

        def apply(writes: list[dict[str, Any]]) -> dict[str, Any]:
            body = {"repo": did, "writes": writes}
            r = client.post("/xrpc/com.atproto.repo.applyWrites", json=body, headers=auth)
            assert r.status_code == 200, r.text
            result: dict[str, Any] = r.json()
            return result

        # Enough records, in two collections, for an MST several layers deep.
        written: dict[str, dict[str, Any]] = {}
        for batch in range(4):
            values = [
                _like(did, f"{batch}-{i}") if i % 5 == 0 else post(f"post {batch}-{i}")
                for i in range(50)
            ]
            writes = [
                {"$type": f"{WRITE}#create", "collection": value["$type"], "value": value}
                for value in values
            ]
            for result, write in zip(apply(writes)["results"], writes, strict=True):
                written[result["uri"]] = {"cid": result["cid"], "value": write["value"]}
        # The last commit deletes, updates and creates; the export before it is kept.
        earlier = client.get("/xrpc/com.atproto.sync.getRepo", params={"did": did}).content
        removed = sorted(written)[::7]
        changed = next(uri for uri in sorted(written)[1:] if f"/{POST}/" in uri)
        last = apply(
            [_delete(uri) for uri in removed]
            + [_update(changed, post("changed")), _create(post("added"))]
        )
        gone = {uri: written.pop(uri)["cid"] for uri in removed}
        changed_cid, added = last["results"][-2]["cid"], last["results"][-1]
        written[changed] = {"cid": changed_cid, "value": post("changed")}
        written[added["uri"]] = {"cid": added["cid"], "value": post("added")}
        latest = client.get("/xrpc/com.atproto.sync.getLatestCommit", params={"did": did}).json()
        doc = httpx.get(f"{plc_url}/{did}").json()

    absent = [_path(uri) for uri in removed] + ["app.bsky.graph.follow/3l2aaaaaaaaa2"]
    payload: dict[str, Any] = {"service": pds_url, "plcUrl": plc_url, "did": did, "absent": absent}
    verified = run_node(
        "repo_verify.mjs", {**payload, "earlier": base64.b64encode(earlier).decode()}
    )
    assert "error" not in verified, verified
    assert verified["signingKey"] == "did:key:" + doc["verificationMethod"][0]["publicKeyMultibase"]
    assert verified["contentType"] == "application/vnd.ipld.car"
    assert verified["latest"] == latest == last["commit"]
    assert verified["commit"] == last["commit"]
    seen = {
        f"at://{did}/{r['collection']}/{r['rkey']}": {"cid": r["cid"], "value": r["record"]}
        for r in verified["records"]
    }
    assert seen == written
    assert len(verified["proofs"]) == len(written) + len(absent)
    assert [p for p in verified["proofs"] if not p["verified"]] == []
    # getRepo?since=<the earlier rev>, applied to the earlier export, gives the last commit.
    diff = verified["diff"]
    assert diff["rev"] == last["commit"]["rev"] and diff["since"] < diff["rev"]
    assert sorted(diff["writes"], key=lambda w: w["path"]) == sorted(
        # @atproto/repo's delete descriptions carry the CID the record had.
        [{"action": "delete", "path": _path(uri), "cid": cid} for uri, cid in gone.items()]
        + [
            {"action": "update", "path": _path(changed), "cid": changed_cid},
            {"action": "create", "path": _path(added["uri"]), "cid": added["cid"]},
        ],
        key=lambda w: w["path"],
    )


def _like(did: str, text: str) -> dict[str, Any]:
    subject = {"uri": f"at://{did}/{POST}/{RKEYS[0]}", "cid": cid_of(post(text))}
    return {"$type": "app.bsky.feed.like", "subject": subject, "createdAt": CREATED_AT}


def _path(uri: str) -> str:
    return uri.split("/", 3)[3]


def _delete(uri: str) -> dict[str, Any]:
    collection, rkey = _path(uri).split("/")
    return {"$type": f"{WRITE}#delete", "collection": collection, "rkey": rkey}


def _update(uri: str, value: dict[str, Any]) -> dict[str, Any]:
    collection, rkey = _path(uri).split("/")
    return {"$type": f"{WRITE}#update", "collection": collection, "rkey": rkey, "value": value}


def _create(value: dict[str, Any]) -> dict[str, Any]:
    return {"$type": f"{WRITE}#create", "collection": value["$type"], "value": value}

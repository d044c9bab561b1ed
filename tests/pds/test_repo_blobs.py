"""Blobs: upload, sniffed type, reference by records, serving, listing, collection."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from atcore.cid import parse_cid
from pds.config import PdsConfig
from tests.pds.conftest import Pds, pds_env, serve_in_process

POST = "app.bsky.feed.post"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


def post_with_image(blob: dict[str, Any]) -> dict[str, Any]:
    return {
        "$type": POST,
        "text": "look",
        "createdAt": "2024-05-01T12:00:00.000Z",
        "embed": {
            "$type": "app.bsky.embed.images",
            "images": [{"alt": "a picture", "image": blob}],
        },
    }


async def test_blob_lifecycle(pds: Pds) -> None:
    created = await pds.create_account("alice.test")
    did, token = created["did"], created["accessJwt"]
    auth = {"authorization": f"Bearer {token}"}
    r = await pds.client.post(
        "/xrpc/com.atproto.repo.uploadBlob",
        content=PNG,
        headers={**auth, "content-type": "application/octet-stream"},
    )
    assert r.status_code == 200, r.text
    blob = r.json()["blob"]
    assert blob["mimeType"] == "image/png" and blob["size"] == len(PNG)
    cid = blob["ref"]["$link"]

    r = await pds.call(
        "com.atproto.repo.createRecord",
        {"repo": did, "collection": POST, "record": post_with_image(blob)},
        token=token,
    )
    assert r.status_code == 200, r.text
    rkey = r.json()["uri"].rsplit("/", 1)[1]

    got = await pds.call("com.atproto.sync.getBlob", params={"did": did, "cid": cid})
    assert got.status_code == 200 and got.content == PNG
    assert got.headers["content-type"] == "image/png"
    assert got.headers["x-content-type-options"] == "nosniff"
    listed = await pds.call("com.atproto.sync.listBlobs", params={"did": did})
    assert listed.json()["cids"] == [cid]
    missing = await pds.call("com.atproto.repo.listMissingBlobs", token=token)
    assert missing.status_code == 200 and missing.json()["blobs"] == []

    deleted = await pds.call(
        "com.atproto.repo.deleteRecord",
        {"repo": did, "collection": POST, "rkey": rkey},
        token=token,
    )
    assert deleted.status_code == 200
    gone = await pds.call("com.atproto.sync.getBlob", params={"did": did, "cid": cid})
    assert gone.status_code == 400 and gone.json()["error"] == "BlobNotFound"
    assert not pds.ctx.actors.blobs.path(did, parse_cid(cid)).exists()
    listed = await pds.call("com.atproto.sync.listBlobs", params={"did": did})
    assert listed.json()["cids"] == []


async def test_records_need_their_blobs(pds: Pds) -> None:
    created = await pds.create_account("alice.test")
    did, token = created["did"], created["accessJwt"]
    ghost = {
        "$type": "blob",
        "ref": {"$link": "bafkreibme22gw2h7y2h7tg2fhqotaqjucnbc24deqo72b6mkl2egezxhvy"},
        "mimeType": "image/png",
        "size": 10,
    }
    r = await pds.call(
        "com.atproto.repo.createRecord",
        {"repo": did, "collection": POST, "record": post_with_image(ghost)},
        token=token,
    )
    assert r.status_code == 400 and r.json()["error"] == "BlobNotFound"
    too_big = b"x" * (pds.ctx.config.blob_upload_limit + 1)
    r = await pds.client.post(
        "/xrpc/com.atproto.repo.uploadBlob",
        content=too_big,
        headers={"authorization": f"Bearer {token}", "content-type": "text/plain"},
    )
    assert r.status_code == 413 and r.json()["error"] == "PayloadTooLarge"


async def test_blobs_live_under_pds_blobstore_disk_location(tmp_path: Path, plc_url: str) -> None:
    env = pds_env(plc_url, PDS_BLOBSTORE_DISK_LOCATION=str(tmp_path / "elsewhere"))
    config = PdsConfig.load(env, data_dir=str(tmp_path / "pds"), port=2583)
    async for pds in serve_in_process(config):
        created = await pds.create_account("bea.test")
        headers = {
            "authorization": f"Bearer {created['accessJwt']}",
            "content-type": "image/png",
        }
        r = await pds.client.post("/xrpc/com.atproto.repo.uploadBlob", content=PNG, headers=headers)
        assert r.status_code == 200, r.text
    stored = [p for p in (tmp_path / "elsewhere").rglob("*") if p.is_file()]
    assert [p.read_bytes() for p in stored] == [PNG]
    assert not (tmp_path / "pds" / "blocks").exists()


async def test_big_blob_streams_through_a_file_and_ranges_are_served(pds: Pds) -> None:
    """Uploads over the in-memory size go through a temporary file; getBlob serves a blob over
    the in-memory size, and any Range request, from the file."""
    created = await pds.create_account("cleo.test")
    did, auth = created["did"], {"authorization": f"Bearer {created['accessJwt']}"}
    big = PNG + bytes(range(256)) * (3 * 4096)  # about 3 MiB, over SPILL and SMALL_BLOB

    async def pieces() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 100_000):
            yield big[start : start + 100_000]

    cids = []
    for content in (pieces(), PNG):
        r = await pds.client.post(
            "/xrpc/com.atproto.repo.uploadBlob",
            content=content,
            headers={**auth, "content-type": "image/png"},
        )
        assert r.status_code == 200, r.text
        cids.append(r.json()["blob"]["ref"]["$link"])
    assert r.json()["blob"]["size"] == len(PNG)
    for cid, data in zip(cids, (big, PNG), strict=True):
        params = {"did": did, "cid": cid}
        whole = await pds.client.get("/xrpc/com.atproto.sync.getBlob", params=params)
        assert whole.status_code == 200 and whole.content == data
        assert whole.headers["content-type"] == "image/png"
        part = await pds.client.get(
            "/xrpc/com.atproto.sync.getBlob", params=params, headers={"range": "bytes=8-15"}
        )
        assert part.status_code == 206 and part.content == data[8:16]
    tmp = pds.ctx.actors.blobs.root / "tmp"
    assert not tmp.exists() or list(tmp.iterdir()) == []

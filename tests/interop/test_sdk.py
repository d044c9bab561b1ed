"""The PyPI `atproto` SDK on a live PDS: its firehose client parses every event we cause, and
its Client makes sessions, records and blobs (tests/pds/test_server_sdk.py covers accounts)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tests.interop.conftest import PASSWORD
from tests.interop.history import POST, History, cid_of, live_account, png

pytestmark = pytest.mark.integration
atproto = pytest.importorskip("atproto")


def signed_by(commit: dict[str, Any], did_key: str) -> bool:
    """The SDK's own check of a commit block's signature over its unsigned DAG-CBOR."""
    import libipld  # the SDK's DAG-CBOR codec

    unsigned = {name: value for name, value in commit.items() if name != "sig"}
    return bool(atproto.verify_signature(did_key, libipld.encode_dag_cbor(unsigned), commit["sig"]))


def as_history(message: Any, did_key: str, values: dict[str, Any]) -> dict[str, Any]:
    """One parsed firehose message in History's shape, its blocks checked on the way."""
    models = atproto.models.ComAtprotoSyncSubscribeRepos
    if isinstance(message, models.Commit):
        car = atproto.CAR.from_bytes(message.blocks)
        assert car.root == message.commit and signed_by(car.blocks[car.root], did_key)
        assert car.blocks[car.root]["rev"] == message.rev
        ops = []
        for op in message.ops:
            cid = op.cid.encode() if op.cid is not None else None
            if cid is not None:
                assert car.blocks[op.cid] == values[cid]
            ops.append((op.action, op.path, cid))
        meta = {"commit": message.commit.encode(), "rev": message.rev}
        return {"kind": "commit", "did": message.repo, **meta, "ops": ops}
    if isinstance(message, models.Identity):
        return {"kind": "identity", "did": message.did, "handle": message.handle}
    if isinstance(message, models.Account):
        status = {"active": message.active, "status": message.status}
        return {"kind": "account", "did": message.did, **status}
    assert isinstance(message, models.Sync), message
    car = atproto.CAR.from_bytes(message.blocks)
    assert list(car.blocks) == [car.root] and signed_by(car.blocks[car.root], did_key)
    return {"kind": "sync", "did": message.did, "commit": car.root.encode(), "rev": message.rev}


async def test_sdk_firehose_parses_every_event(pds_url: str, plc_url: str) -> None:
    history: History = await asyncio.to_thread(live_account, pds_url, "sdkfeed.test", "sdk2.test")
    did_key = await asyncio.to_thread(_did_key, plc_url, history.did)
    # Identity events carry the handle as it was when they were emitted.
    expected = [
        e | {"handle": "sdkfeed.test"} if (e["kind"], i) == ("identity", 0) else e
        for i, e in enumerate(history.events)
    ]
    params = atproto.models.ComAtprotoSyncSubscribeRepos.Params(cursor=0)
    ws = pds_url.replace("http", "ws", 1) + "/xrpc"
    client = atproto.AsyncFirehoseSubscribeReposClient(params, base_uri=ws)
    seen: list[dict[str, Any]] = []
    errors: list[BaseException] = []

    async def on_message(frame: Any) -> None:
        message = atproto.parse_subscribe_repos_message(frame)
        if (getattr(message, "repo", None) or getattr(message, "did", None)) != history.did:
            return  # another test's account
        seen.append(as_history(message, did_key, history.values))
        if len(seen) == len(expected):
            await client.stop()

    async def on_error(error: BaseException) -> None:
        errors.append(error)
        await client.stop()

    await asyncio.wait_for(client.start(on_message, on_error), 10)
    assert errors == []
    assert seen == expected


def _did_key(plc_url: str, did: str) -> str:
    doc = httpx.get(f"{plc_url}/{did}").json()
    return "did:key:" + str(doc["verificationMethod"][0]["publicKeyMultibase"])


# The SDK's uploadBlob hands httpx its bytes the deprecated way; that warning is not ours.
@pytest.mark.filterwarnings("ignore:Use 'content=<...>' to upload:DeprecationWarning")
def test_sdk_client_records_and_blobs(pds_url: str) -> None:
    from atproto_client.exceptions import BadRequestError  # type: ignore[import-untyped]
    from atproto_client.request import Request  # type: ignore[import-untyped]

    models = atproto.models
    request = Request()
    try:
        client = atproto.Client(base_url=pds_url, request=request)
        account = {"handle": "sdkposts.test", "email": "p@example.com", "password": PASSWORD}
        created = client.com.atproto.server.create_account(account)
        client.login("sdkposts.test", PASSWORD, fetch_bsky_profile=False)
        did = created.did
        repo = client.com.atproto.repo

        # The profile is an appview's business; the SDK is told which repo to write to.
        sent = client.send_post("hello from the SDK", profile_identify=did)
        _, _, _, collection, rkey = sent.uri.split("/")
        assert collection == POST
        got = repo.get_record({"repo": did, "collection": POST, "rkey": rkey})
        assert (got.uri, got.cid) == (sent.uri, sent.cid)
        assert got.value.text == "hello from the SDK"

        edited = {"$type": POST, "text": "edited", "createdAt": "2024-05-01T12:00:00.000Z"}
        put = repo.put_record({"repo": did, "collection": POST, "rkey": rkey, "record": edited})
        assert (put.uri, put.cid) == (sent.uri, cid_of(edited))

        image = png()
        uploaded = client.upload_blob(image).blob
        assert (uploaded.mime_type, uploaded.size) == ("image/png", len(image))
        with_image = client.send_image("with an image", image, "tiny", profile_identify=did)
        posted = repo.get_record(
            {"repo": did, "collection": POST, "rkey": with_image.uri.rsplit("/", 1)[1]}
        )
        embedded = posted.value.embed.images[0].image
        assert embedded.ref.link == uploaded.ref.link and embedded.size == len(image)
        blob = client.com.atproto.sync.get_blob({"did": did, "cid": uploaded.ref.link})
        assert blob == image

        write = models.ComAtprotoRepoApplyWrites
        applied = repo.apply_writes(
            write.Data(
                repo=did,
                writes=[
                    write.Create(collection=POST, rkey="3l2aaaaaaaaa2", value=edited),
                    write.Delete(collection=POST, rkey=rkey),
                ],
            )
        )
        assert [type(r).__name__ for r in applied.results] == ["CreateResult", "DeleteResult"]
        listed = repo.list_records({"repo": did, "collection": POST})
        assert sorted(r.uri for r in listed.records) == sorted(
            [with_image.uri, f"at://{did}/{POST}/3l2aaaaaaaaa2"]
        )
        assert client.delete_post(with_image.uri)
        with pytest.raises(BadRequestError) as missing:
            repo.get_record({"repo": did, "collection": POST, "rkey": rkey})
        assert missing.value.response.content.error == "RecordNotFound"

        exported = atproto.CAR.from_bytes(client.com.atproto.sync.get_repo({"did": did}))
        head = client.com.atproto.sync.get_latest_commit({"did": did})
        assert exported.root.encode() == head.cid
        described = repo.describe_repo({"repo": did})
        assert (described.handle, described.collections) == ("sdkposts.test", [POST])
    finally:
        request.close()

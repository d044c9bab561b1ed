"""com.atproto.repo.importRepo (pds.repo_import) and the sweep of unreferenced uploads."""

from __future__ import annotations

import argparse
import re
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import httpx
import pytest

from atcore import cbor
from atcore.blockstore import MemoryBlockStore
from atcore.car import read_car, write_car
from atcore.cid import CID, cid_for_cbor, cid_for_raw, parse_cid
from atcore.commit import create_commit, decode_commit, verify_commit
from atcore.frames import CommitEvent, SyncEvent
from atcore.identity.diddoc import parse_did_document
from atcore.keys import PrivateKey, generate_k256
from atcore.mst import tree
from atcore.repo import RepoHead, export_blocks
from atcore.syntax.did import Did
from atcore.syntax.tid import Tid, TidClock, tid_from_timestamp
from atcore.xrpc.stream import subscribe
from pds.config import PdsConfig
from pds.context import AppContext
from skyloft.repo_cli import run_verify
from tests.pds.conftest import PASSWORD, Pds, pds_env, serve_in_process
from tests.pds.repo_env import check_commit_event
from tests.pds.test_identity_migration import service_token
from tests.pds.test_repo_blobs import PNG, post_with_image
from tests.pds.test_server_accounts import error_of, events_of, plc_document
from tests.servers import running_service

pytestmark = pytest.mark.integration

IMPORT = "com.atproto.repo.importRepo"
POST = "app.bsky.feed.post"
CAR = "application/vnd.ipld.car"


def post(text: str) -> dict[str, Any]:
    return {"$type": POST, "text": text, "createdAt": "2024-05-01T12:00:00.000Z"}


async def import_car(pds: Pds, token: str, car: bytes) -> httpx.Response:
    headers = {"authorization": f"Bearer {token}", "content-type": CAR}
    return await pds.client.post(f"/xrpc/{IMPORT}", content=car, headers=headers)


async def create(pds: Pds, did: str, token: str, record: dict[str, Any]) -> dict[str, Any]:
    body = {"repo": did, "collection": record["$type"], "record": record}
    response = await pds.call("com.atproto.repo.createRecord", body, token=token)
    assert response.status_code == 200, response.text
    created: dict[str, Any] = response.json()
    return created


async def export(pds: Pds, did: str) -> bytes:
    response = await pds.call("com.atproto.sync.getRepo", params={"did": did})
    assert response.status_code == 200, response.text
    return response.content


def lax_node_car(did: str, key: PrivateKey, record: bytes) -> bytes:
    """A signed repo whose MST root hashes and decodes as DAG-CBOR but breaks the MST layout:
    its second key repeats the first one's collection instead of sharing it as a prefix."""
    value = cid_for_cbor(record)
    keys = [f"{POST}/3kabc".encode(), f"{POST}/3kabd".encode()]
    entries = [{"k": k, "p": 0, "t": None, "v": value} for k in keys]
    node = cbor.encode({"e": entries, "l": None})
    data = cid_for_cbor(node)
    commit, block, cid = create_commit(Did(did), data, TidClock().next(), key)
    return write_car(cid, [(cid, block), (data, node), (value, record)])


def signed_car(
    did: str, key: PrivateKey, records: dict[str, bytes], rev: Tid | None = None
) -> tuple[bytes, CID]:
    """A repo of raw record blocks signed by `key`; returns the CAR and its MST root."""
    store = MemoryBlockStore()
    items = []
    for path, block in records.items():
        cid = cid_for_cbor(block)
        store.put(cid, block)
        items.append((path, cid))
    data = tree.build(store, items)
    commit, block, cid = create_commit(Did(did), data, rev or TidClock().next(), key)
    store.put(cid, block)
    return write_car(cid, export_blocks(store, RepoHead(cid, commit, data))), data


async def test_reimport_replaces_the_repo_and_later_writes_chain(pds: Pds) -> None:
    alice = await pds.create_account("alice.test")
    did, token = alice["did"], alice["accessJwt"]
    kept = [await create(pds, did, token, post(f"post {i}")) for i in range(3)]
    car = await export(pds, did)
    imported_data = decode_commit(read_car(car).blocks[read_car(car).root]).data
    later = await create(pds, did, token, post("written after the export"))

    response = await import_car(pds, token, car)
    assert response.status_code == 200, response.text
    listed = await pds.call(
        "com.atproto.repo.listRecords", params={"repo": did, "collection": POST}
    )
    assert {r["uri"] for r in listed.json()["records"]} == {k["uri"] for k in kept}
    gone = await pds.call(
        "com.atproto.repo.getRecord",
        params={"repo": did, "collection": POST, "rkey": later["uri"].rsplit("/", 1)[1]},
    )
    assert error_of(gone) == (400, "RecordNotFound")

    key = (await pds.ctx.actors.signing_key(did)).public_key()
    head = (await pds.call("com.atproto.sync.getLatestCommit", params={"did": did})).json()
    assert head["rev"] > later["commit"]["rev"]
    sync = [e for e in await events_of(pds, did) if isinstance(e, SyncEvent)][-1]
    synced = read_car(sync.blocks)
    commit = decode_commit(synced.blocks[synced.root])
    assert (synced.root.encode(), sync.rev) == (head["cid"], head["rev"])
    assert commit.data == imported_data and verify_commit(commit, key)

    after = await create(pds, did, token, post("after the import"))
    event = [e for e in await events_of(pds, did) if isinstance(e, CommitEvent)][-1]
    assert event.commit.encode() == after["commit"]["cid"]
    assert event.since == head["rev"] and event.prev_data == imported_data
    check_commit_event(event, key)


async def test_bad_imports_are_refused(pds: Pds) -> None:
    alice = await pds.create_account("alice.test")
    bob = await pds.create_account("bob.test")
    did, token = alice["did"], alice["accessJwt"]
    await create(pds, did, token, post("hello"))
    car = await export(pds, did)
    parsed = read_car(car)
    record_cid = next(c for c, b in parsed.blocks.items() if cbor.decode(b).get("text"))
    tampered = {**parsed.blocks, record_cid: parsed.blocks[record_cid].replace(b"hello", b"HELLO")}
    own_key = await pds.ctx.actors.signing_key(did)
    good = cbor.encode(post("fine"))
    # Keys out of canonical order: hashes fine, but not strict DAG-CBOR.
    loose = b"\xa2dtextbhie$typeqapp.bsky.feed.post"
    far_future = tid_from_timestamp(int((datetime.now(UTC).timestamp() + 86400) * 1e6), 0)
    without_record, _ = signed_car(did, own_key, {f"{POST}/3kabc": good})
    missing = read_car(without_record)
    cases: list[tuple[bytes, str]] = [
        (car[:-7], "truncated"),
        (write_car(parsed.root, tampered.items()), "does not match its hash"),
        (await export(pds, bob["did"]), f"not of {did}"),
        (signed_car(did, generate_k256(), {f"{POST}/3kabc": good})[0], "signature"),
        (signed_car(did, own_key, {f"{POST}/3kabc": loose})[0], "not strict DAG-CBOR"),
        (signed_car(did, own_key, {f"{POST}/3kabc": cbor.encode([1])})[0], "not a map"),
        (signed_car(did, own_key, {"nonsid/3kabc": good})[0], "collection/rkey"),
        (signed_car(did, own_key, {f"{POST}/3kabc": good}, far_future)[0], "in the future"),
        (
            write_car(missing.root, [(c, b) for c, b in missing.blocks.items() if b != good]),
            "lacks record",
        ),
        (b"\x00not a car", "invalid CAR"),
        (lax_node_car(did, own_key, good), "maximal shared prefix"),
    ]
    for body, expected in cases:
        response = await import_car(pds, token, body)
        assert error_of(response) == (400, "InvalidRequest"), (expected, response.text)
        assert expected in response.json()["message"], response.text
    unauthenticated = await pds.client.post(
        f"/xrpc/{IMPORT}", content=car, headers={"content-type": CAR}
    )
    assert error_of(unauthenticated) == (401, "AuthMissing")
    listed = await pds.call(
        "com.atproto.repo.listRecords", params={"repo": did, "collection": POST}
    )
    assert [r["value"]["text"] for r in listed.json()["records"]] == ["hello"]


async def test_oversized_import_is_413(tmp_path: Path, plc_url: str) -> None:
    env = pds_env(plc_url, PDS_MAX_REPO_IMPORT_SIZE="2048")
    config = PdsConfig.load(env, data_dir=str(tmp_path / "small"), port=2583)
    assert config.max_import_size == 2048
    async for pds in serve_in_process(config):
        alice = await pds.create_account("alice.test")
        did, token = alice["did"], alice["accessJwt"]
        for i in range(20):
            await create(pds, did, token, post(f"padding {i} " * 10))
        car = await export(pds, did)
        assert len(car) > 2048
        assert error_of(await import_car(pds, token, car)) == (413, "PayloadTooLarge")


async def test_imported_blob_refs_are_missing_until_uploaded_and_kept(pds: Pds) -> None:
    """listMissingBlobs lists what imported records reference; once uploaded, a blob is theirs
    and the sweep keeps it, while uploads no record references go after the grace period."""
    alice = await pds.create_account("alice.test")
    did, token = alice["did"], alice["accessJwt"]
    clock = [datetime(2030, 1, 1, tzinfo=UTC)]
    sweeper = pds.ctx.blob_sweeper
    sweeper.now = lambda: clock[0]
    wanted = PNG + b"imported"
    image = {"$type": "blob", "ref": cid_for_raw(wanted), "mimeType": "image/png", "size": 9}
    key = await pds.ctx.actors.signing_key(did)
    car, _ = signed_car(did, key, {f"{POST}/3kabc": cbor.encode(post_with_image(image))})
    assert (await import_car(pds, token, car)).status_code == 200

    async def upload(data: bytes) -> str:
        headers = {"authorization": f"Bearer {token}", "content-type": "image/png"}
        r = await pds.client.post(
            "/xrpc/com.atproto.repo.uploadBlob", content=data, headers=headers
        )
        assert r.status_code == 200, r.text
        cid: str = r.json()["blob"]["ref"]["$link"]
        return cid

    async def missing() -> list[dict[str, str]]:
        r = await pds.call("com.atproto.repo.listMissingBlobs", token=token)
        assert r.status_code == 200, r.text
        blobs: list[dict[str, str]] = r.json()["blobs"]
        return blobs

    referenced = cid_for_raw(wanted).encode()
    assert await missing() == [{"cid": referenced, "recordUri": f"at://{did}/{POST}/3kabc"}]
    assert await upload(wanted) == referenced
    assert await missing() == []
    stray = await upload(PNG)
    clock[0] += timedelta(minutes=30)
    young = await upload(PNG + b"young")
    clock[0] += timedelta(minutes=31)
    assert await sweeper.sweep() == 1
    blobs = pds.ctx.actors.blobs
    assert not blobs.path(did, parse_cid(stray)).exists()
    assert blobs.path(did, parse_cid(young)).exists()
    clock[0] += timedelta(hours=1)
    assert await sweeper.sweep() == 1
    assert not blobs.path(did, parse_cid(young)).exists()
    assert await sweeper.sweep() == 0
    served = await pds.call("com.atproto.sync.getBlob", params={"did": did, "cid": referenced})
    assert served.status_code == 200 and served.content == wanted


async def test_full_migration_between_two_pds_processes(tmp_path: Path, plc_url: str) -> None:
    """pds-ACCOUNT_MIGRATION.md end to end over XRPC only: two `skyloft pds serve` processes
    and the PLC directory process."""
    async with AsyncExitStack() as stack:
        old_url = stack.enter_context(
            running_service("pds", tmp_path / "old", env=pds_env(plc_url))
        )
        new_url = stack.enter_context(
            running_service("pds", tmp_path / "new", env=pds_env(plc_url))
        )
        old_client = await stack.enter_async_context(httpx.AsyncClient(base_url=old_url))
        new_client = await stack.enter_async_context(httpx.AsyncClient(base_url=new_url))
        # The tests' Pds helper, on a process: only its client is used.
        old, new = Pds(old_client, cast(AppContext, None)), Pds(new_client, cast(AppContext, None))
        account = await old.create_account("nina.test")
        did, old_token = account["did"], account["accessJwt"]
        images = [PNG + b"one", PNG + b"two"]
        for n, data in enumerate(images):
            headers = {"authorization": f"Bearer {old_token}", "content-type": "image/png"}
            r = await old_client.post(
                "/xrpc/com.atproto.repo.uploadBlob", content=data, headers=headers
            )
            assert r.status_code == 200, r.text
            await create(old, did, old_token, {**post_with_image(r.json()["blob"]), "text": str(n)})
        for n in range(5):
            await create(old, did, old_token, post(f"plain {n}"))
        prefs = {
            "preferences": [{"$type": "app.bsky.actor.defs#adultContentPref", "enabled": True}]
        }
        r = await old.call("app.bsky.actor.putPreferences", prefs, token=old_token)
        assert r.status_code == 200, r.text

        # Account on the new PDS, proven with a service token from the old.
        new_did = (await new.call("com.atproto.server.describeServer")).json()["did"]
        token = await service_token(old, old_token, new_did)
        body = {
            "did": did,
            "handle": "nina.test",
            "email": "nina@example.com",
            "password": PASSWORD,
        }
        r = await new.call("com.atproto.server.createAccount", body, token=token)
        assert r.status_code == 200, r.text
        new_token = r.json()["accessJwt"]

        # Data: the repo, then its blobs, then preferences.
        exported = await export(old, did)
        r = await import_car(new, new_token, exported)
        assert r.status_code == 200, r.text
        status = (await new.call("com.atproto.server.checkAccountStatus", token=new_token)).json()
        assert (status["activated"], status["indexedRecords"]) == (False, 7)
        # A retry with only what changed since the export (guide-account-migration.md).
        since = decode_commit(read_car(exported).blocks[read_car(exported).root]).rev
        late = await create(old, did, old_token, post("written during the migration"))
        r = await old.call("com.atproto.sync.getRepo", params={"did": did, "since": since})
        assert (await import_car(new, new_token, r.content)).status_code == 200
        missing = (await new.call("com.atproto.repo.listMissingBlobs", token=new_token)).json()
        assert len(missing["blobs"]) == 2
        status = (await new.call("com.atproto.server.checkAccountStatus", token=new_token)).json()
        assert (status["expectedBlobs"], status["importedBlobs"]) == (2, 0)
        for blob in missing["blobs"]:
            got = await old.call(
                "com.atproto.sync.getBlob", params={"did": did, "cid": blob["cid"]}
            )
            headers = {
                "authorization": f"Bearer {new_token}",
                "content-type": got.headers["content-type"],
            }
            r = await new_client.post(
                "/xrpc/com.atproto.repo.uploadBlob", content=got.content, headers=headers
            )
            assert r.json()["blob"]["ref"]["$link"] == blob["cid"]
        missing = (await new.call("com.atproto.repo.listMissingBlobs", token=new_token)).json()
        assert missing["blobs"] == []
        status = (await new.call("com.atproto.server.checkAccountStatus", token=new_token)).json()
        assert (status["expectedBlobs"], status["importedBlobs"]) == (2, 2)
        got_prefs = await old.call("app.bsky.actor.getPreferences", token=old_token)
        r = await new.call("app.bsky.actor.putPreferences", got_prefs.json(), token=new_token)
        assert r.status_code == 200, r.text

        # Identity: the old PDS signs the PLC operation (its code is in its dev-mode mail log),
        # the new one submits it, then the new account is activated and the old deactivated.
        await old.call(
            "com.atproto.identity.requestPlcOperationSignature", method="POST", token=old_token
        )
        code = re.findall(r"Your code: (\S+)", (tmp_path / "pds-old.log").read_text())[-1]
        creds = await new.call("com.atproto.identity.getRecommendedDidCredentials", token=new_token)
        signed = await old.call(
            "com.atproto.identity.signPlcOperation",
            {"token": code, **creds.json()},
            token=old_token,
        )
        assert signed.status_code == 200, signed.text
        r = await new.call(
            "com.atproto.identity.submitPlcOperation",
            {"operation": signed.json()["operation"]},
            token=new_token,
        )
        assert r.status_code == 200, r.text
        r = await new.call("com.atproto.server.activateAccount", method="POST", token=new_token)
        assert r.status_code == 200, r.text
        r = await old.call("com.atproto.server.deactivateAccount", {}, token=old_token)
        assert r.status_code == 200, r.text

        # Every record and blob is served by the new PDS, and its repo verifies with the key
        # the DID document now names.
        doc = parse_did_document(await plc_document(plc_url, did), Did(did))
        assert doc.pds_endpoint is not None and doc.pds_endpoint.endswith(new_url.rsplit(":", 1)[1])
        key = doc.require_signing_key()
        for collection, count in ((POST, 8),):
            params = {"repo": did, "collection": collection, "limit": 100}
            listed = (await new.call("com.atproto.repo.listRecords", params=params)).json()
            assert len(listed["records"]) == count
            assert late["uri"] in {r["uri"] for r in listed["records"]}
        for data in images:
            cid = cid_for_raw(data).encode()
            got = await new.call("com.atproto.sync.getBlob", params={"did": did, "cid": cid})
            assert got.status_code == 200 and got.content == data
        prefs_now = await new.call("app.bsky.actor.getPreferences", token=new_token)
        assert prefs_now.json() == prefs
        car_path = tmp_path / "migrated.car"
        car_path.write_bytes(await export(new, did))
        assert run_verify(argparse.Namespace(car=car_path, did_key=key.did_key())) == 0
        head = (await new.call("com.atproto.sync.getLatestCommit", params={"did": did})).json()
        migrated = read_car(car_path.read_bytes())
        imported_data = decode_commit(migrated.blocks[migrated.root]).data

        # The new firehose: a #sync of that head, verifying with the new key; a new write's
        # #commit chains from it.
        written = await create(new, did, new_token, post("first post from the new PDS"))
        stream = f"{new_url}/xrpc/com.atproto.sync.subscribeRepos"
        syncs: list[SyncEvent] = []
        async for event in subscribe(stream, {"cursor": 0}):
            if isinstance(event, SyncEvent) and event.did == did:
                syncs.append(event)
            if isinstance(event, CommitEvent) and event.rev == written["commit"]["rev"]:
                break
        sync_car = read_car(syncs[-1].blocks)
        sync_commit = decode_commit(sync_car.blocks[sync_car.root])
        assert (sync_car.root.encode(), syncs[-1].rev) == (head["cid"], head["rev"])
        assert verify_commit(sync_commit, key) and sync_commit.data == imported_data
        assert event.since == head["rev"] and event.prev_data == imported_data
        check_commit_event(event, key)

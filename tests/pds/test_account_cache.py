"""The in-memory account cache and takedown index: every change to an account or a takedown is
seen by the very next request, and a read racing a change never leaves a stale entry."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pds.accounts.account import Account
from pds.accounts.cache import AccountCache
from pds.accounts.store import AccountStore
from tests.pds.conftest import Pds
from tests.pds.test_ops_admin import ADMIN, REPO_REF, STATUS, admin
from tests.pds.test_server_accounts import error_of

POST = "app.bsky.feed.post"


def account(did: str, handle: str) -> Account:
    return Account(did, handle, None, None, "2024-01-01T00:00:00.000Z", None, None, None)


def test_cache_is_a_bounded_lru() -> None:
    cache = AccountCache(size=2)
    for n in range(3):
        cache.fill(account(f"did:plc:{n}", f"h{n}.test"), cache.generation)
        cache.by_did("did:plc:1")  # kept fresh
    assert len(cache) == 2
    assert cache.by_did("did:plc:0") is None
    assert cache.by_handle("h1.test") == account("did:plc:1", "h1.test")
    assert cache.by_handle("h2.test") is not None


def test_a_read_from_before_a_change_is_not_kept() -> None:
    cache = AccountCache()
    before = cache.generation
    cache.forget("did:plc:a")
    cache.fill(account("did:plc:a", "a.test"), before)
    assert cache.by_did("did:plc:a") is None


def test_a_handle_entry_stops_matching_when_the_handle_moves() -> None:
    cache = AccountCache()
    cache.fill(account("did:plc:a", "a.test"), cache.generation)
    cache.forget("did:plc:a")
    cache.fill(account("did:plc:a", "b.test"), cache.generation)
    assert cache.by_handle("a.test") is None
    assert cache.by_handle("b.test") == account("did:plc:a", "b.test")


async def test_store_changes_are_seen_at_once(tmp_path: Path) -> None:
    store = await AccountStore.open(tmp_path / "account.sqlite")
    try:
        await store.create("did:plc:a", "a.test", "a@example.com", None)
        assert (await store.by_did("did:plc:a")) is not None  # now cached
        await store.set_takedown("did:plc:a", "ref")
        assert (await store.by_did("did:plc:a")).takedown_ref == "ref"  # type: ignore[union-attr]
        await store.set_deactivated("did:plc:a", True)
        assert (await store.by_handle("a.test")).deactivated_at is not None  # type: ignore[union-attr]
        await store.set_handle("did:plc:a", "b.test")
        assert await store.by_handle("a.test") is None
        assert (await store.by_did("did:plc:a")).handle == "b.test"  # type: ignore[union-attr]
        await store.set_email("did:plc:a", "b@example.com")
        assert (await store.by_did("did:plc:a")).email == "b@example.com"  # type: ignore[union-attr]
        await store.confirm_email("did:plc:a")
        assert (await store.by_did("did:plc:a")).email_confirmed_at is not None  # type: ignore[union-attr]
        await store.set_password("did:plc:a", "hash")
        assert (await store.by_handle("b.test")).password_hash == "hash"  # type: ignore[union-attr]
        await store.delete("did:plc:a")
        assert await store.by_did("did:plc:a") is None
        assert await store.by_handle("b.test") is None
    finally:
        await store.close()


async def test_reads_racing_a_change_leave_no_stale_entry(tmp_path: Path) -> None:
    store = await AccountStore.open(tmp_path / "account.sqlite")
    try:
        await store.create("did:plc:a", "a.test", None, None)
        for n in range(20):
            ref = f"ref{n}"
            # Reads queued before, beside and after the change on the database thread.
            reads = [asyncio.ensure_future(store.by_did("did:plc:a")) for _ in range(3)]
            change = asyncio.ensure_future(store.set_takedown("did:plc:a", ref))
            reads += [asyncio.ensure_future(store.by_handle("a.test")) for _ in range(3)]
            await asyncio.gather(change, *reads)
            assert (await store.by_did("did:plc:a")).takedown_ref == ref  # type: ignore[union-attr]
            assert (await store.by_handle("a.test")).takedown_ref == ref  # type: ignore[union-attr]
    finally:
        await store.close()


async def test_record_takedown_index(tmp_path: Path) -> None:
    path = tmp_path / "account.sqlite"
    store = await AccountStore.open(path)
    subjects = store.subjects
    uri = "at://did:plc:a/app.bsky.feed.post/1"
    try:
        assert await subjects.takedown_ref("record", "did:plc:a", uri) is None
        await subjects.set_takedown("record", "did:plc:a", uri, "r1")
        await subjects.set_takedown("record", "did:plc:a", uri + "2", "r2")
        assert await subjects.takedown_ref("record", "did:plc:a", uri) == "r1"
        assert await subjects.takedown_ref("blob", "did:plc:a", uri) is None
        await subjects.set_takedown("record", "did:plc:a", uri, None)
        assert await subjects.takedown_ref("record", "did:plc:a", uri) is None
        assert await subjects.taken_down("record", "did:plc:a", [uri, uri + "2"]) == {uri + "2"}
    finally:
        await store.close()
    # The index is rebuilt from the table when the store opens again.
    store = await AccountStore.open(path)
    try:
        assert await store.subjects.takedown_ref("record", "did:plc:a", uri + "2") == "r2"
        await store.subjects.set_takedown("record", "did:plc:a", uri + "2", None)
        assert await store.subjects.taken_down("record", "did:plc:a", [uri + "2"]) == set()
    finally:
        await store.close()


async def _post(pds: Pds, did: str, token: str, text: str) -> str:
    body = {
        "repo": did,
        "collection": POST,
        "record": {"$type": POST, "text": text, "createdAt": "2024-05-01T12:00:00.000Z"},
    }  # noqa: E501
    response = await pds.call("com.atproto.repo.createRecord", body, token=token)
    assert response.status_code == 200, response.text
    return str(response.json()["uri"]).rsplit("/", 1)[1]


async def _get(pds: Pds, repo: str, rkey: str) -> tuple[int, str | None]:
    """The status of getRecord, with the error name when it failed."""
    params = {"repo": repo, "collection": POST, "rkey": rkey}
    response = await pds.call("com.atproto.repo.getRecord", params=params)
    return (200, None) if response.status_code == 200 else error_of(response)


async def test_api_sees_each_account_change_on_the_next_request(pds: Pds) -> None:
    created = await pds.create_account("carol.test")
    did, token = created["did"], created["accessJwt"]
    rkey = await _post(pds, did, token, "one")
    assert (await _get(pds, "carol.test", rkey))[0] == 200  # cached by DID and handle now
    subject = {"$type": REPO_REF, "did": did}

    await admin(pds, STATUS, {"subject": subject, "takedown": {"applied": True, "ref": "x"}})
    assert await _get(pds, did, rkey) == (400, "InvalidRequest")  # "Could not find repo"
    body = {
        "repo": did,
        "collection": POST,
        "record": {"$type": POST, "text": "2", "createdAt": "2024-05-01T12:00:00.000Z"},
    }  # noqa: E501
    refused = await pds.call("com.atproto.repo.createRecord", body, token=token)
    assert error_of(refused) == (401, "AccountTakedown")
    await admin(pds, STATUS, {"subject": subject, "takedown": {"applied": False}})
    assert (await _get(pds, did, rkey))[0] == 200

    off = await pds.call("com.atproto.server.deactivateAccount", {}, token=token)
    assert off.status_code == 200, off.text
    refused = await pds.call("com.atproto.repo.createRecord", body, token=token)
    assert error_of(refused) == (401, "AccountDeactivated")
    on = await pds.call("com.atproto.server.activateAccount", token=token, method="POST")
    assert on.status_code == 200, on.text
    await _post(pds, did, token, "three")

    moved = await pds.call(
        "com.atproto.identity.updateHandle", {"handle": "carol2.test"}, token=token
    )
    assert moved.status_code == 200, moved.text
    assert await _get(pds, "carol.test", rkey) == (400, "InvalidRequest")
    assert await _get(pds, "carol2.test", rkey) == (200, None)

    await admin(pds, "com.atproto.admin.deleteAccount", {"did": did})
    assert await _get(pds, did, rkey) == (400, "InvalidRequest")
    assert await _get(pds, "carol2.test", rkey) == (400, "InvalidRequest")


async def test_api_sees_a_record_takedown_on_the_next_request(pds: Pds) -> None:
    created = await pds.create_account("dave.test")
    did, token = created["did"], created["accessJwt"]
    rkey = await _post(pds, did, token, "one")
    assert (await _get(pds, did, rkey))[0] == 200
    uri = f"at://{did}/{POST}/{rkey}"
    subject = {
        "$type": "com.atproto.repo.strongRef",
        "uri": uri,
        "cid": "bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm",
    }  # noqa: E501
    response = await pds.client.post(
        f"/xrpc/{STATUS}", json={"subject": subject, "takedown": {"applied": True}}, headers=ADMIN
    )
    assert response.status_code == 200, response.text
    assert await _get(pds, did, rkey) == (400, "RecordNotFound")
    response = await pds.client.post(
        f"/xrpc/{STATUS}", json={"subject": subject, "takedown": {"applied": False}}, headers=ADMIN
    )
    assert response.status_code == 200, response.text
    assert (await _get(pds, did, rkey))[0] == 200

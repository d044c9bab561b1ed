"""One account's life on a live PDS, and the firehose events it must cause, in order; the
records and the image the interop tests write.

Each event is a plain dict: `{"kind": "identity", "did", "handle"}`, `{"kind": "account",
"did", "active", "status"}`, `{"kind": "sync", "did", "commit", "rev"}` or `{"kind": "commit",
"did", "commit", "rev", "ops": [(action, path, cid-or-None)]}`, with the values the PDS's own
responses gave, so a client's parsed firehose can be compared to it exactly.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

import httpx

from atcore import cbor
from atcore.cid import cid_for_cbor
from atcore.datamodel import record_from_json
from tests.interop.conftest import PASSWORD

POST = "app.bsky.feed.post"
REPO = "com.atproto.repo"
WRITE = f"{REPO}.applyWrites"
CREATED_AT = "2024-05-01T12:00:00.000Z"


def post(text: str, **extra: Any) -> dict[str, Any]:
    return {"$type": POST, "text": text, "createdAt": CREATED_AT, **extra}


def cid_of(record: dict[str, Any]) -> str:
    """The CID a record written as JSON gets: of its DAG-CBOR encoding."""
    return cid_for_cbor(cbor.encode(record_from_json(record))).encode()


def png() -> bytes:
    """A valid 1x1 RGBA PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", 1, 1, 8, 6, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00\xff")
    body = chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


@dataclass
class History:
    did: str
    handle: str
    events: list[dict[str, Any]] = field(default_factory=list)
    values: dict[str, dict[str, Any]] = field(default_factory=dict)


def live_account(pds_url: str, handle: str, new_handle: str) -> History:
    """Create, update, batch-write and delete records, change the handle, deactivate and
    reactivate; return the expected events and the record values written (by CID)."""
    with httpx.Client(base_url=pds_url, timeout=30) as client:
        account = {"handle": handle, "email": f"{handle}@example.com", "password": PASSWORD}
        created = _call(client, "com.atproto.server.createAccount", account)
        did = created["did"]
        auth = {"authorization": f"Bearer {created['accessJwt']}"}
        history = History(did, new_handle)

        def call(nsid: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
            return _call(client, nsid, body, auth)

        def head() -> dict[str, Any]:
            r = client.get("/xrpc/com.atproto.sync.getLatestCommit", params={"did": did})
            return {"did": did, "commit": r.json()["cid"], "rev": r.json()["rev"]}

        def commit(result: dict[str, Any], ops: list[tuple[str, str, str | None]]) -> None:
            meta = {"commit": result["commit"]["cid"], "rev": result["commit"]["rev"]}
            history.events.append({"kind": "commit", "did": did, **meta, "ops": ops})

        def identity(name: str) -> dict[str, Any]:
            return {"kind": "identity", "did": did, "handle": name}

        def status(active: bool, reason: str | None) -> dict[str, Any]:
            return {"kind": "account", "did": did, "active": active, "status": reason}

        genesis = head()
        history.events += [
            identity(handle),
            status(True, None),
            {"kind": "commit", **genesis, "ops": []},
            {"kind": "sync", **genesis},
        ]
        first = post("first")
        made = call(f"{REPO}.createRecord", {"repo": did, "collection": POST, "record": first})
        path = made["uri"].split("/", 3)[3]
        rkey = path.split("/")[1]
        commit(made, [("create", path, made["cid"])])
        put = {"repo": did, "collection": POST, "rkey": rkey, "record": post("first, edited")}
        edited = call(f"{REPO}.putRecord", put)
        commit(edited, [("update", path, edited["cid"])])

        batch = [post("batch a"), post("batch b")]
        writes: list[dict[str, Any]] = [
            {"$type": f"{WRITE}#create", "collection": POST, "value": value} for value in batch
        ]
        writes.append({"$type": f"{WRITE}#delete", "collection": POST, "rkey": rkey})
        applied = call(WRITE, {"repo": did, "writes": writes})
        kept, dropped = applied["results"][:2]
        kept_path, dropped_path = (r["uri"].split("/", 3)[3] for r in (kept, dropped))
        ops = [("create", kept_path, kept["cid"]), ("create", dropped_path, dropped["cid"])]
        commit(applied, [*ops, ("delete", path, None)])
        gone = {"repo": did, "collection": POST, "rkey": dropped_path.split("/")[1]}
        commit(call(f"{REPO}.deleteRecord", gone), [("delete", dropped_path, None)])
        history.values = {
            made["cid"]: first,
            edited["cid"]: put["record"],
            kept["cid"]: batch[0],
            dropped["cid"]: batch[1],
        }

        call("com.atproto.identity.updateHandle", {"handle": new_handle})
        history.events.append(identity(new_handle))
        call("com.atproto.server.deactivateAccount", {})
        history.events.append(status(False, "deactivated"))
        call("com.atproto.server.activateAccount")
        history.events += [identity(new_handle), status(True, None), {"kind": "sync", **head()}]
    return history


def _call(
    client: httpx.Client,
    nsid: str,
    body: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    r = client.post(f"/xrpc/{nsid}", json=body, headers=headers)
    assert r.status_code == 200, f"{nsid}: {r.status_code} {r.text}"
    result: dict[str, Any] = r.json() if r.content else {}
    return result

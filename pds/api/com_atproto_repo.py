"""com.atproto.repo.*: record writes and reads of hosted repos (lexicons com/atproto/repo)."""

from __future__ import annotations

from typing import Any

from atcore import cbor
from atcore.cid import CID, cid_text, parse_cid
from atcore.errors import InvalidCid
from atcore.xrpc.body import stream_body
from atcore.xrpc.errors import InvalidRequest
from atcore.xrpc.router import Methods, XrpcRequest
from pds.actor_store.store import Txn
from pds.api.repo_access import hidden_records, own_repo, readable_repo, require_record_served
from pds.auth import access_auth, access_full
from pds.context import ctx_of
from pds.repo_commit import CommitResult, WriteResult
from pds.repo_import import import_repo
from pds.repo_writer import MAX_WRITES, Write, apply_writes

xrpc = Methods()

_APPLY = "com.atproto.repo.applyWrites"
_ACTIONS = {
    f"{_APPLY}#create": "create",
    f"{_APPLY}#update": "update",
    f"{_APPLY}#delete": "delete",
}


def _cid(value: Any, name: str) -> CID | None:
    if value is None:
        return None
    try:
        return parse_cid(value)
    except InvalidCid:
        raise InvalidRequest(f"{name} must be a CID") from None


def _commit_meta(result: CommitResult) -> dict[str, Any]:
    return {"cid": cid_text(result.cid), "rev": result.rev}


def _write_output(result: CommitResult, write: WriteResult) -> dict[str, Any]:
    assert write.cid is not None
    out: dict[str, Any] = {"uri": write.uri, "cid": cid_text(write.cid)}
    out["commit"] = _commit_meta(result)
    if write.validation is not None:
        out["validationStatus"] = write.validation
    return out


async def _write(req: XrpcRequest, write: Write) -> CommitResult | None:
    ctx = ctx_of(req)
    body = req.input
    account, _ = await own_repo(ctx, req.auth, body["repo"])
    swap_commit = _cid(body.get("swapCommit"), "swapCommit")
    return await apply_writes(ctx, account.did, [write], swap_commit)


@xrpc.procedure("com.atproto.repo.createRecord", auth=access_auth)
async def create_record(req: XrpcRequest) -> dict[str, Any]:
    body = req.input
    write = Write(
        "create", body["collection"], body.get("rkey"), body["record"], body.get("validate")
    )
    result = await _write(req, write)
    assert result is not None
    return _write_output(result, result.results[0])


@xrpc.procedure("com.atproto.repo.putRecord", auth=access_auth)
async def put_record(req: XrpcRequest) -> dict[str, Any]:
    body = req.input
    write = Write(
        "update",
        body["collection"],
        body["rkey"],
        body["record"],
        body.get("validate"),
        swap="swapRecord" in body,
        swap_record=_cid(body.get("swapRecord"), "swapRecord"),
        upsert=True,
    )
    result = await _write(req, write)
    assert result is not None
    return _write_output(result, result.results[0])


@xrpc.procedure("com.atproto.repo.deleteRecord", auth=access_auth)
async def delete_record(req: XrpcRequest) -> dict[str, Any]:
    body = req.input
    swap_record = _cid(body.get("swapRecord"), "swapRecord")
    write = Write(
        "delete",
        body["collection"],
        body["rkey"],
        swap=swap_record is not None,
        swap_record=swap_record,
        if_exists=swap_record is None,
    )
    result = await _write(req, write)
    return {} if result is None else {"commit": _commit_meta(result)}


@xrpc.procedure("com.atproto.repo.applyWrites", auth=access_auth)
async def apply_writes_(req: XrpcRequest) -> dict[str, Any]:
    ctx = ctx_of(req)
    body = req.input
    account, _ = await own_repo(ctx, req.auth, body["repo"])
    items = body["writes"]
    if len(items) > MAX_WRITES:
        raise InvalidRequest(f"Too many writes. Max: {MAX_WRITES}")
    validate = body.get("validate")
    writes = []
    for item in items:
        action = _ACTIONS.get(item.get("$type", ""))
        if action is None:
            raise InvalidRequest(f"unknown write type {item.get('$type')!r:.100}")
        record = item.get("value")
        if action != "delete" and record is None:
            raise InvalidRequest(f"{action} write needs a value")
        writes.append(Write(action, item["collection"], item.get("rkey"), record, validate))  # type: ignore[arg-type]
    swap_commit = _cid(body.get("swapCommit"), "swapCommit")
    result = await apply_writes(ctx, account.did, writes, swap_commit)
    assert result is not None
    results = []
    for write in result.results:
        out: dict[str, Any] = {"$type": f"{_APPLY}#{write.action}Result"}
        if write.cid is not None:
            out["uri"], out["cid"] = write.uri, cid_text(write.cid)
            if write.validation is not None:
                out["validationStatus"] = write.validation
        results.append(out)
    return {"commit": _commit_meta(result), "results": results}


@xrpc.query("com.atproto.repo.getRecord")
async def get_record(req: XrpcRequest) -> dict[str, Any]:
    ctx = ctx_of(req)
    params = req.params
    account, store = await readable_repo(ctx, params["repo"])
    collection, rkey = params["collection"], params["rkey"]
    row = await store.read(lambda sql: sql.get_record(collection, rkey))
    uri = f"at://{account.did}/{collection}/{rkey}"
    wanted = _cid(params.get("cid"), "cid")
    if row is None or (wanted is not None and row.cid != wanted):
        raise InvalidRequest(f"Could not locate record: {uri}", "RecordNotFound")
    await require_record_served(ctx, account.did, uri)
    return {"uri": uri, "cid": cid_text(row.cid), "value": cbor.decode(row.value)}


@xrpc.query("com.atproto.repo.listRecords")
async def list_records(req: XrpcRequest) -> dict[str, Any]:
    ctx = ctx_of(req)
    params = req.params
    account, store = await readable_repo(ctx, params["repo"])
    collection = params["collection"]
    limit = params.get("limit", 50)
    cursor, reverse = params.get("cursor"), bool(params.get("reverse", False))
    rows = await store.read(lambda sql: sql.list_records(collection, limit, cursor, reverse))
    uris = [f"at://{account.did}/{collection}/{row.rkey}" for row in rows]
    hidden = await hidden_records(ctx, account.did, uris)
    # The cursor stays the last row read, so a page with hidden records is just shorter.
    records = [
        {"uri": uri, "cid": cid_text(row.cid), "value": cbor.decode(row.value)}
        for uri, row in zip(uris, rows, strict=True)
        if uri not in hidden
    ]
    out: dict[str, Any] = {"records": records}
    if len(rows) == limit and rows:
        out["cursor"] = rows[-1].rkey
    return out


@xrpc.query("com.atproto.repo.describeRepo")
async def describe_repo(req: XrpcRequest) -> dict[str, Any]:
    ctx = ctx_of(req)
    account, store = await readable_repo(ctx, req.params["repo"])
    collections = await store.read(lambda sql: sql.collections())
    doc = await ctx.did_docs.get(account.did)
    handle_ok = doc is not None and f"at://{account.handle}" in doc.get("alsoKnownAs", [])
    return {
        "handle": account.handle,
        "did": account.did,
        "didDoc": doc or {},
        "collections": collections,
        "handleIsCorrect": handle_ok,
    }


@xrpc.procedure("com.atproto.repo.uploadBlob", auth=access_auth)
async def upload_blob(req: XrpcRequest) -> dict[str, Any]:
    ctx = ctx_of(req)
    account, store = await own_repo(ctx, req.auth, req.auth.did, deactivated_ok=True)
    declared = req.request.headers.get("content-type")
    upload = await ctx.actors.blobs.upload(account.did, req.stream(), declared)
    now = ctx.blob_sweeper.now().isoformat()

    def record(txn: Txn) -> None:
        txn.sql.put_blob(upload.cid, upload.mime, upload.size, now)

    await store.transact(record)
    ctx.blob_sweeper.uploaded(account.did)
    ref = {"$type": "blob", "ref": upload.cid, "mimeType": upload.mime, "size": upload.size}
    return {"blob": ref}


@xrpc.query("com.atproto.repo.listMissingBlobs", auth=access_auth)
async def list_missing_blobs(req: XrpcRequest) -> dict[str, Any]:
    ctx = ctx_of(req)
    account, store = await own_repo(ctx, req.auth, req.auth.did, deactivated_ok=True)
    limit = req.params.get("limit", 500)
    cursor = _cid(req.params.get("cursor"), "cursor")
    rows = await store.read(lambda sql: sql.missing_blobs(cursor, limit))
    blobs = [{"cid": cid.encode(), "recordUri": f"at://{account.did}/{path}"} for cid, path in rows]
    out: dict[str, Any] = {"blobs": blobs}
    if len(rows) == limit:
        out["cursor"] = rows[-1][0].encode()
    return out


@xrpc.procedure("com.atproto.repo.importRepo", auth=access_full)
async def import_repo_(req: XrpcRequest) -> None:
    ctx = ctx_of(req)
    if not ctx.config.accepting_imports:
        raise InvalidRequest("Service is not accepting repo imports")
    account, _ = await own_repo(ctx, req.auth, req.auth.did, deactivated_ok=True)
    body = stream_body(req.request, ctx.config.max_import_size)
    await import_repo(ctx, account.did, account.active, body)

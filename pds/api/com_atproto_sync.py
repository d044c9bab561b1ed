"""com.atproto.sync.*: repo exports, proofs, listings and the firehose (spec-sync.md)."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.responses import FileResponse, Response

from atcore.cid import CID, cid_text, parse_cid
from atcore.errors import InvalidCid
from atcore.xrpc.errors import InvalidRequest
from atcore.xrpc.router import Methods, SubscriptionRequest, XrpcRequest, XrpcResponse
from pds.actor_store import RepoMissing
from pds.api.repo_access import (
    open_store,
    require_blob_served,
    require_record_served,
    synced_repo,
)
from pds.context import ctx_of
from pds.repo_reader import MissingBlocks, blocks_car, export_car, record_proof

xrpc = Methods()

CAR = "application/vnd.ipld.car"
BLOB_CSP = "default-src 'none'; sandbox"
# getBlocks answers at most this many CIDs per call (the reference caps it too).
MAX_BLOCKS = 1000
# Blobs up to this size are read whole and sent from memory.
SMALL_BLOB = 1 << 20


@xrpc.query("com.atproto.sync.getRepo")
async def get_repo(req: XrpcRequest) -> XrpcResponse:
    ctx = ctx_of(req)
    _, store = await synced_repo(ctx, req.params["did"])
    try:
        _, chunks = await export_car(store, req.params.get("since"))
    except LookupError:
        raise InvalidRequest("repo has no commit yet", "RepoNotFound") from None
    return XrpcResponse(chunks, CAR)


@xrpc.query("com.atproto.sync.getLatestCommit")
async def get_latest_commit(req: XrpcRequest) -> dict[str, Any]:
    ctx = ctx_of(req)
    did = req.params["did"]
    _, store = await synced_repo(ctx, did)
    root = await store.read(lambda sql: sql.root())
    if root is None:
        raise InvalidRequest(f"Could not find root for DID: {did}", "RepoNotFound")
    return {"cid": cid_text(root.cid), "rev": root.rev}


@xrpc.query("com.atproto.sync.getRecord")
async def get_record(req: XrpcRequest) -> XrpcResponse:
    ctx = ctx_of(req)
    did, collection, rkey = req.params["did"], req.params["collection"], req.params["rkey"]
    _, store = await synced_repo(ctx, did)
    await require_record_served(ctx, did, f"at://{did}/{collection}/{rkey}")
    proof = await store.read(lambda sql: record_proof(sql, collection, rkey))
    if proof is None:
        raise InvalidRequest(f"Could not find root for DID: {did}", "RepoNotFound")
    return XrpcResponse(proof[1], CAR)


@xrpc.query("com.atproto.sync.getBlocks")
async def get_blocks(req: XrpcRequest) -> XrpcResponse:
    ctx = ctx_of(req)
    did, texts = req.params["did"], req.params["cids"]
    if len(texts) > MAX_BLOCKS:
        raise InvalidRequest(f"at most {MAX_BLOCKS} cids per call")
    cids = [_parse_cid(text) for text in texts]
    _, store = await synced_repo(ctx, did)
    try:
        car = await store.read(lambda sql: blocks_car(sql, cids))
    except MissingBlocks as exc:
        raise InvalidRequest(f"Could not find cids: {exc}", "BlockNotFound") from None
    if car is None:
        raise InvalidRequest(f"Could not find root for DID: {did}", "RepoNotFound")
    return XrpcResponse(car, CAR)


@xrpc.query("com.atproto.sync.listRepos")
async def list_repos(req: XrpcRequest) -> dict[str, Any]:
    ctx = ctx_of(req)
    limit = req.params.get("limit", 500)
    dids = ctx.actors.list_dids(req.params.get("cursor"), limit)
    repos = []
    for did in dids:
        account = await ctx.accounts.by_did(did)
        if account is None:
            continue
        try:
            store = await ctx.actors.open(did)
        except RepoMissing:
            continue
        root = await store.read(lambda sql: sql.root())
        if root is None:
            continue
        repo: dict[str, Any] = {"did": did, "head": cid_text(root.cid), "rev": root.rev}
        repo["active"] = account.active
        if account.status is not None:
            repo["status"] = account.status
        repos.append(repo)
    out: dict[str, Any] = {"repos": repos}
    if len(dids) == limit:
        out["cursor"] = dids[-1]
    return out


@xrpc.query("com.atproto.sync.getRepoStatus")
async def get_repo_status(req: XrpcRequest) -> dict[str, Any]:
    ctx = ctx_of(req)
    did = req.params["did"]
    account = await ctx.accounts.by_did(did)
    if account is None:
        raise InvalidRequest(f"Could not find repo for DID: {did}", "RepoNotFound")
    out: dict[str, Any] = {"did": did, "active": account.active}
    if account.status is not None:
        out["status"] = account.status
    else:
        store = await open_store(ctx, did)
        root = await store.read(lambda sql: sql.root())
        if root is not None:
            out["rev"] = root.rev
    return out


@xrpc.query("com.atproto.sync.getBlob")
async def get_blob(req: XrpcRequest) -> Response:
    ctx = ctx_of(req)
    did = req.params["did"]
    cid = _parse_cid(req.params["cid"])
    _, store = await synced_repo(ctx, did)
    await require_blob_served(ctx, did, cid.encode())
    row = await store.read(lambda sql: sql.blob(cid))
    if row is None:
        raise InvalidRequest("Blob not found", "BlobNotFound")
    blobs = ctx.actors.blobs
    # Served bytes are user content: never let a browser render or sniff them as a page.
    headers = {"x-content-type-options": "nosniff", "content-security-policy": BLOB_CSP}
    try:
        # A small blob in one read on one thread; FileResponse's stat, open, reads and close
        # would each be a thread hop. Big blobs and range requests stream from the file.
        data = None
        if "range" not in req.request.headers:
            loop = asyncio.get_running_loop()
            data = await loop.run_in_executor(None, blobs.read_small, did, cid, SMALL_BLOB)
        path = blobs.path(did, cid)
        if data is None and not path.exists():
            raise FileNotFoundError(path)
    except FileNotFoundError:
        raise InvalidRequest("Blob not found", "BlobNotFound") from None
    if data is not None:
        return Response(data, media_type=row[0], headers=headers)
    return FileResponse(path, media_type=row[0], headers=headers)


@xrpc.query("com.atproto.sync.listBlobs")
async def list_blobs(req: XrpcRequest) -> dict[str, Any]:
    ctx = ctx_of(req)
    params = req.params
    _, store = await synced_repo(ctx, params["did"])
    limit, since = params.get("limit", 500), params.get("since")
    cursor = _parse_cid(params["cursor"]) if "cursor" in params else None
    cids = await store.read(lambda sql: sql.list_blobs(since, cursor, limit))
    out: dict[str, Any] = {"cids": [cid.encode() for cid in cids]}
    if len(cids) == limit:
        out["cursor"] = cids[-1].encode()
    return out


def _parse_cid(text: str) -> CID:
    try:
        return parse_cid(text)
    except InvalidCid as exc:
        raise InvalidRequest(str(exc)) from None


@xrpc.subscription("com.atproto.sync.subscribeRepos")
async def subscribe_repos(sub: SubscriptionRequest) -> None:
    ctx = ctx_of(sub)
    async for frames in ctx.sequencer.subscribe_batches(sub.params.get("cursor")):
        await sub.send_frames(frames)

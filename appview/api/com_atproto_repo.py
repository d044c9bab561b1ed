"""com.atproto.repo.getRecord from the index (lexicon com/atproto/repo/getRecord), as the
reference appview serves it: a PDS reads a feed generator's record here to learn which
service DID to mint the viewer's getFeedSkeleton token for (pds.feed_proxy)."""

from __future__ import annotations

from typing import Any

from appview import pipeline
from appview.auth import optional_viewer
from appview.context import ctx_of
from appview.db import feedgens
from atcore.xrpc.errors import InvalidRequest
from atcore.xrpc.router import Methods, XrpcRequest

xrpc = Methods()


@xrpc.query("com.atproto.repo.getRecord", auth=optional_viewer)
async def get_record(req: XrpcRequest) -> dict[str, Any]:
    ctx = ctx_of(req)
    params = req.params
    repo = params["repo"]
    did = await pipeline.actor_did(ctx, repo)
    if did is None or did not in (await pipeline.load(ctx, None, [did])).actors:
        raise InvalidRequest(f"Could not find repo: {repo}")
    uri = f"at://{did}/{params['collection']}/{params['rkey']}"
    found = await ctx.db.read(feedgens.record, uri)
    if found is None or params.get("cid") not in (None, found[0]):
        raise InvalidRequest(f"Could not locate record: {uri}", "RecordNotFound")
    return {"uri": uri, "cid": found[0], "value": found[1]}

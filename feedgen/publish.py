"""Publishing a feed: the `app.bsky.feed.generator` record in its owner's repository, written
through their PDS (the starter kit's `publishFeedGen` script; lexicon app.bsky.feed.generator).

The record's key is the feed's name, so publishing again updates it in place; it names the
feed generator's service DID, where appviews send `getFeedSkeleton`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, Final

from atcore.syntax.datetime import now_iso
from atcore.xrpc.client import XrpcClient, XrpcClientError, http_session
from feedgen.sdk import Feed

GENERATOR: Final = "app.bsky.feed.generator"
TIMEOUT: Final = 30.0


class PublishError(RuntimeError):
    """The PDS refused the login or the record; the message quotes its error."""


@dataclass(frozen=True)
class Owner:
    """Who publishes: their PDS, and the handle (or DID, or email) and password to log in."""

    pds_url: str
    identifier: str
    password: str


def generator_record(feed: Feed, service_did: str) -> dict[str, Any]:
    record: dict[str, Any] = {
        "$type": GENERATOR,
        "did": service_did,
        "displayName": feed.display_name[:240],
        "createdAt": now_iso(),
    }
    if feed.description:
        record["description"] = feed.description[:3000]
    return record


def publish(owner: Owner, feed: Feed, service_did: str) -> str:
    """Log in as `owner`, put the generator record, log out; returns the feed's at:// URI."""
    return asyncio.run(_publish(owner, feed, service_did))


async def _publish(owner: Owner, feed: Feed, service_did: str) -> str:
    async with http_session(trust_env=True) as http:
        pds = XrpcClient(owner.pds_url, http, timeout=TIMEOUT)
        login = {"identifier": owner.identifier, "password": owner.password}
        session = await _ok(pds.procedure("com.atproto.server.createSession", login))
        pds.auth_header = f"Bearer {session['accessJwt']}"
        body = {
            "repo": session["did"],
            "collection": GENERATOR,
            "rkey": feed.name,
            "record": generator_record(feed, service_did),
        }
        written = await _ok(pds.procedure("com.atproto.repo.putRecord", body))
        pds.auth_header = f"Bearer {session['refreshJwt']}"
        try:
            await pds.procedure("com.atproto.server.deleteSession")
        except XrpcClientError:
            pass  # the record is written; a session left to expire harms nothing
    return str(written["uri"])


async def _ok(call: Awaitable[Any]) -> Any:
    try:
        return await call
    except XrpcClientError as exc:
        raise PublishError(f"the PDS refused: {exc}") from exc

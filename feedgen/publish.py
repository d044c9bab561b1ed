"""Publishing a feed: the `app.bsky.feed.generator` record in its owner's repository, written
through their PDS (the starter kit's `publishFeedGen` script; lexicon app.bsky.feed.generator).

The record's key is the feed's name, so publishing again updates it in place; it names the
feed generator's service DID, where appviews send `getFeedSkeleton`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import httpx

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
    created = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    record: dict[str, Any] = {
        "$type": GENERATOR,
        "did": service_did,
        "displayName": feed.display_name[:240],
        "createdAt": created,
    }
    if feed.description:
        record["description"] = feed.description[:3000]
    return record


def publish(owner: Owner, feed: Feed, service_did: str) -> str:
    """Log in as `owner`, put the generator record, log out; returns the feed's at:// URI."""
    base = owner.pds_url.rstrip("/") + "/xrpc/"
    with httpx.Client(timeout=TIMEOUT) as http:
        login = {"identifier": owner.identifier, "password": owner.password}
        session = _ok(http.post(base + "com.atproto.server.createSession", json=login))
        auth = {"Authorization": f"Bearer {session['accessJwt']}"}
        body = {
            "repo": session["did"],
            "collection": GENERATOR,
            "rkey": feed.name,
            "record": generator_record(feed, service_did),
        }
        written = _ok(http.post(base + "com.atproto.repo.putRecord", json=body, headers=auth))
        refresh = {"Authorization": f"Bearer {session['refreshJwt']}"}
        http.post(base + "com.atproto.server.deleteSession", headers=refresh)
    return str(written["uri"])


def _ok(response: httpx.Response) -> Any:
    if response.status_code != 200:
        try:
            body = response.json()
            detail = f"{body.get('error')}: {body.get('message')}"
        except ValueError:
            detail = response.text[:200]
        raise PublishError(f"{response.request.url.path} failed ({response.status_code}) {detail}")
    return response.json()

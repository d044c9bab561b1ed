"""A repository's whole export as index changes (spec-sync.md, "Record-Level Synchronization";
com.atproto.sync.getRepo, com.atproto.sync.listRepos).

The CAR is fetched from the account's own PDS (its DID document names it) through the guarded
client, streamed within `EXPORT_LIMITS` with every block's hash checked, and verified like a
live commit: the root is a commit of this DID, signed with its current key (unless the relay
is trusted), over a tree of canonical layout whose every record is in the CAR. Each record of
an indexed collection becomes a PutRecord (or a SkipRecord when it fails its lexicon).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Final

import httpx

from appview.changes import Backfilled, PutRecord, SkipRecord
from appview.commits import record_change
from atcore.blockstore import MemoryBlockStore
from atcore.car import CarLimits, aiter_car_blocks
from atcore.cid import CID
from atcore.commit import decode_commit
from atcore.errors import (
    DecodeError,
    IdentityError,
    InvalidCar,
    InvalidCommit,
    InvalidMst,
    InvalidSyntax,
)
from atcore.firehose_verify import DidResolver, Unverified, check_signature
from atcore.lexicon import Catalog
from atcore.mst import walk
from atcore.syntax.datetime import now_iso
from atcore.xrpc.client import XrpcClient, XrpcClientError

# Records are at most 1,000,000 bytes; a repo export is kept whole in memory while verified.
EXPORT_LIMITS: Final = CarLimits(
    max_blocks=2_000_000, max_block_size=1_000_000, max_total_size=1 << 30, max_header_size=4096
)
# For the whole export; the HTTP client's own limit bounds each connect and read.
EXPORT_TIMEOUT: Final = 15 * 60.0
GET_REPO: Final = "com.atproto.sync.getRepo"
LIST_REPOS: Final = "com.atproto.sync.listRepos"
LIST_PAGE: Final = 1000
# A page of 1000 DIDs with their revs and statuses is about 150 KB.
MAX_LIST_PAGE_BYTES: Final = 4 * 1024 * 1024
LIST_TIMEOUT: Final = 60.0


class ExportFailed(Exception):
    """The repo could not be fetched, or its export does not verify."""


@dataclass(frozen=True)
class Export:
    repo: Backfilled
    size: int  # the CAR's bytes


@dataclass(frozen=True)
class ListedRepo:
    did: str
    active: bool
    status: str | None


async def fetch_repo(
    did: str,
    resolver: DidResolver,
    http: httpx.AsyncClient,
    catalog: Catalog,
    *,
    trust: bool = False,
    limits: CarLimits = EXPORT_LIMITS,
    timeout: float = EXPORT_TIMEOUT,
) -> Export:
    """`did`'s repo from its PDS, verified, as a Backfilled change; ExportFailed if not."""
    try:
        endpoint = (await resolver.resolve_did(did)).require_pds_endpoint()
    except (IdentityError, InvalidSyntax, ValueError) as exc:
        raise ExportFailed(f"{did} does not resolve to a PDS: {exc}") from exc
    blocks, root, size = await _fetch(http, endpoint, did, limits, timeout)
    try:
        commit = decode_commit(blocks.get(root))
    except (KeyError, InvalidCommit, DecodeError) as exc:
        raise ExportFailed(f"the export's root is not a commit: {exc!r:.200}") from exc
    if commit.did != did:
        raise ExportFailed(f"getRepo of {did} returned {commit.did}'s commit")
    if not trust:
        try:
            await check_signature(commit, resolver)
        except Unverified as exc:
            raise ExportFailed(str(exc)) from exc
    indexed_at = now_iso()
    records: list[PutRecord] = []
    skipped: list[SkipRecord] = []
    try:
        walk.validate_tree(blocks, commit.data)
        for path, cid in walk.walk(blocks, commit.data):
            if not blocks.has(cid):
                raise ExportFailed(f"record {path} is not in the export")
            change = record_change(did, path, cid, blocks, catalog, indexed_at)
            if isinstance(change, PutRecord):
                records.append(change)
            elif change is not None:
                skipped.append(change)
    except (InvalidMst, DecodeError, KeyError) as exc:  # KeyError: MissingBlock, a node missing
        raise ExportFailed(f"invalid repo tree: {exc!r:.200}") from exc
    return Export(Backfilled(did, commit.rev, records, skipped), size)


async def _fetch(
    http: httpx.AsyncClient, endpoint: str, did: str, limits: CarLimits, timeout: float
) -> tuple[MemoryBlockStore, CID, int]:
    blocks = MemoryBlockStore()
    size = 0
    pds = XrpcClient(endpoint, http, max_response=limits.max_total_size, timeout=timeout)
    try:
        async with pds.query_stream(GET_REPO, {"did": did}) as answer:
            reader = aiter_car_blocks(answer.chunks, limits)
            roots = await reader.roots()
            async for cid, data in reader:
                blocks.put(cid, data)
                size += len(data)
    except InvalidCar as exc:
        raise ExportFailed(f"getRepo of {did}: bad CAR: {exc}") from exc
    except XrpcClientError as exc:  # RepoDeactivated, RepoTakendown, ... or no answer
        raise ExportFailed(f"getRepo of {did} from {endpoint}: {exc}") from exc
    except IdentityError as exc:  # the guard refused the host
        raise ExportFailed(f"getRepo of {did} from {endpoint}: {exc!r}") from exc
    if not roots:
        raise ExportFailed(f"getRepo of {did}: the CAR names no root")
    return blocks, roots[0], size


async def list_repos(host: str, http: httpx.AsyncClient) -> AsyncIterator[ListedRepo]:
    """Every repo `host` (a base URL) lists, page by page (com.atproto.sync.listRepos)."""
    relay = XrpcClient(host, http, max_response=MAX_LIST_PAGE_BYTES, timeout=LIST_TIMEOUT)
    cursor: str | None = None
    seen: set[str] = set()
    while True:
        try:
            body = await relay.query(LIST_REPOS, {"limit": LIST_PAGE, "cursor": cursor})
            page = [
                ListedRepo(str(repo["did"]), repo.get("active") is not False, repo.get("status"))
                for repo in body["repos"]
            ]
            cursor = body.get("cursor")
        except (XrpcClientError, IdentityError) as exc:
            raise ExportFailed(f"listRepos at {host}: {exc}") from exc
        except (KeyError, TypeError, AttributeError) as exc:
            raise ExportFailed(f"listRepos at {host}: malformed answer: {exc!r:.200}") from exc
        fresh = [repo for repo in page if repo.did not in seen]
        for repo in fresh:
            seen.add(repo.did)
            yield repo
        if not fresh or not isinstance(cursor, str):
            return  # the last page, or a host paging in circles

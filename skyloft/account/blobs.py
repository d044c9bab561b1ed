"""Copy the blobs a new PDS still misses from the old one (pds-ACCOUNT_MIGRATION.md,
"Migrating Data": listMissingBlobs, sync.getBlob, uploadBlob).

The new PDS's `listMissingBlobs` is the to-do list, so a copy that was stopped resumes by
asking again. Several blobs travel at once; each is retried by the sessions.
"""

from __future__ import annotations

import asyncio
from typing import Final

from atcore.xrpc.client import XrpcClientError
from runtime.progress import Progress
from skyloft.account.session import Session

CONCURRENCY: Final = 8
PAGE: Final = 500


class BlobsMissing(Exception):
    """The old PDS no longer has some blobs the repository references."""


async def missing_blobs(new: Session) -> list[str]:
    cids: list[str] = []
    cursor: str | None = None
    while True:
        page = await new.query(
            "com.atproto.repo.listMissingBlobs", {"limit": PAGE, "cursor": cursor}
        )
        cids += [blob["cid"] for blob in page.get("blobs", [])]
        cursor = page.get("cursor")
        if not cursor or not page.get("blobs"):
            return cids


async def copy_blobs(old: Session, new: Session, did: str, concurrency: int = CONCURRENCY) -> int:
    """Copy every missing blob; returns how many were copied. BlobsMissing names the blobs
    the old PDS does not have (they cannot be copied, however often we try)."""
    todo = await missing_blobs(new)
    if not todo:
        return 0
    progress = Progress("blobs", len(todo))
    queue: asyncio.Queue[str] = asyncio.Queue()
    for cid in todo:
        queue.put_nowait(cid)
    lost: list[str] = []

    async def worker() -> None:
        while not queue.empty():
            cid = queue.get_nowait()
            try:
                data, mime = await old.query_bytes(
                    "com.atproto.sync.getBlob", {"did": did, "cid": cid}
                )
            except XrpcClientError as exc:
                if exc.error != "BlobNotFound":
                    raise
                lost.append(cid)
                continue
            mime = mime or "application/octet-stream"
            await new.procedure("com.atproto.repo.uploadBlob", data, encoding=mime)
            progress.add(1, len(data))

    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(concurrency):
                group.create_task(worker())
    except ExceptionGroup as failed:
        raise failed.exceptions[0] from None
    finally:
        progress.close()
    if lost:
        raise BlobsMissing(f"the old PDS does not have {len(lost)} blob(s): {', '.join(lost)}")
    return len(todo)

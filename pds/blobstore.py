"""Blobs on disk, content-addressed per account (spec-blob.md, guide-blob-lifecycle.md).

`<root>/<did>/<cid>` holds each blob once. Uploads stream to `<root>/tmp/` while being hashed
and size-checked, then move into place; the account's database tracks whether any record
references the blob (see pds.actor_store.sql).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from atcore.cid import CID, RAW

# Leading bytes -> MIME type, for the formats clients upload (images and video).
_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\x89PNG\r\n\x1a\n", "image/png"),
    (0, b"\xff\xd8\xff", "image/jpeg"),
    (0, b"GIF87a", "image/gif"),
    (0, b"GIF89a", "image/gif"),
    (8, b"WEBP", "image/webp"),
    (4, b"ftypavif", "image/avif"),
    (4, b"ftypheic", "image/heic"),
    (4, b"ftyp", "video/mp4"),
    (0, b"\x1a\x45\xdf\xa3", "video/webm"),
)
_RAW_SHA256 = bytes([0x01, RAW, 0x12, 0x20])


def sniff_mime(head: bytes, declared: str | None) -> str:
    """The MIME type by content when recognised, else the client's, else octet-stream."""
    for offset, magic, mime in _MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return mime
    if declared and "/" in declared and len(declared) <= 100:
        return declared.split(";", 1)[0].strip().lower()
    return "application/octet-stream"


@dataclass(frozen=True)
class Upload:
    cid: CID
    size: int
    mime: str


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, did: str, cid: CID) -> Path:
        return self.root / did / cid.encode()

    async def upload(
        self, did: str, chunks: AsyncIterator[bytes], declared_mime: str | None
    ) -> Upload:
        """Store a streamed upload (its size is bounded by the request body limit)."""
        tmp_dir = self.root / "tmp"
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, lambda: tmp_dir.mkdir(parents=True, exist_ok=True))
        tmp = tmp_dir / secrets.token_hex(16)
        digest = hashlib.sha256()
        head = b""
        size = 0
        try:
            with open(tmp, "wb") as out:
                async for chunk in chunks:
                    digest.update(chunk)
                    if len(head) < 64:
                        head += chunk[: 64 - len(head)]
                    size += len(chunk)
                    await loop.run_in_executor(None, out.write, chunk)
            cid = CID(_RAW_SHA256 + digest.digest())
            final = self.path(did, cid)
            await loop.run_in_executor(None, _move, tmp, final)
        finally:
            tmp.unlink(missing_ok=True)
        return Upload(cid, size, sniff_mime(head, declared_mime))

    def delete(self, did: str, cids: list[CID]) -> None:
        for cid in cids:
            self.path(did, cid).unlink(missing_ok=True)


def _move(tmp: Path, final: Path) -> None:
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, final)

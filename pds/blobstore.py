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
from typing import BinaryIO, Final

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
# Uploads are held in memory up to this size, then written to a temporary file as they come.
SPILL: Final = 1 << 20


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
        loop = asyncio.get_running_loop()
        spool = _Spool(self.root / "tmp" / secrets.token_hex(16))
        digest = hashlib.sha256()
        buffered: list[bytes] = []
        head = b""
        pending = size = 0
        try:
            async for chunk in chunks:
                digest.update(chunk)
                if len(head) < 64:
                    head += chunk[: 64 - len(head)]
                buffered.append(chunk)
                size += len(chunk)
                pending += len(chunk)
                if pending >= SPILL:
                    # Each thread hop costs more than hashing a chunk: write in big pieces.
                    await loop.run_in_executor(None, spool.write, buffered)
                    buffered, pending = [], 0
            cid = CID(_RAW_SHA256 + digest.digest())
            await loop.run_in_executor(None, spool.finish, buffered, self.path(did, cid))
        except BaseException:
            spool.discard()
            raise
        return Upload(cid, size, sniff_mime(head, declared_mime))

    def read_small(self, did: str, cid: CID, limit: int) -> bytes | None:
        """The blob's bytes when it has at most `limit` of them, else None (blocking: run it
        in a thread). FileNotFoundError when the blob is not on disk."""
        with open(self.path(did, cid), "rb") as file:
            if os.fstat(file.fileno()).st_size > limit:
                return None
            return file.read()

    def delete(self, did: str, cids: list[CID]) -> None:
        for cid in cids:
            self.path(did, cid).unlink(missing_ok=True)


class _Spool:
    """A temporary file an upload is written to, moved into place once complete (the blocking
    calls run in a thread)."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.out: BinaryIO | None = None

    def write(self, chunks: list[bytes]) -> None:
        if self.out is None:
            self.tmp.parent.mkdir(parents=True, exist_ok=True)
            self.out = open(self.tmp, "wb")  # closed by finish or discard
        self.out.writelines(chunks)

    def finish(self, chunks: list[bytes], final: Path) -> None:
        """Write the rest, then move the whole blob into place (never a partial one there)."""
        self.write(chunks)
        assert self.out is not None
        self.out.close()
        try:
            os.replace(self.tmp, final)
        except FileNotFoundError:
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.tmp, final)

    def discard(self) -> None:
        if self.out is not None:
            self.out.close()
        self.tmp.unlink(missing_ok=True)

"""`skyloft account backup` and `verify-backup`: a local, incremental copy of an account
(guide-account-recovery.md; spec-sync.md, getRepo `since`, listBlobs, getBlob).

DIR/backup.json names the DID, the PDS and signing key it was taken from, the revision reached
and the repository segments in order: the first a whole CAR, each later one only the blocks
since the previous revision. Blobs are files named by their CID under DIR/blobs, with the MIME
type the PDS served each with (getBlob's Content-Type) in the manifest, so a recovery uploads
each blob as what it is; preferences are DIR/preferences.json. The manifest is replaced last,
so an interrupted backup is simply the previous one plus some files it will find again.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

from atcore import cbor
from atcore.blockstore import MemoryBlockStore
from atcore.car import read_car
from atcore.cid import CID, cid_for_raw
from atcore.commit import verify_commit
from atcore.datamodel import blob_refs
from atcore.keys import parse_did_key
from atcore.mst import walk
from atcore.repo import RepoHead, read_head
from skyloft.account.session import Session

MANIFEST: Final = "backup.json"
PAGE: Final = 1000
# An RFC 6838 type or subtype name.
_TOKEN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}")


@dataclass
class Manifest:
    did: str
    pds: str
    signing_key: str
    rev: str | None = None
    segments: list[str] = field(default_factory=list)
    # Blob CID -> its MIME type (absent from backups made before types were kept).
    blob_types: dict[str, str] = field(default_factory=dict)


def _write(path: Path, data: bytes) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def load_manifest(out: Path) -> Manifest | None:
    path = out / MANIFEST
    if not path.exists():
        return None
    try:
        return Manifest(**json.loads(path.read_text()))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: not a backup manifest ({exc})") from None


async def backup(pds: Session, manifest: Manifest, out: Path, preferences: bool) -> tuple[int, int]:
    """Bring the backup in `out` up to date; (repository bytes, blobs) fetched this time."""
    did = manifest.did
    (out / "repo").mkdir(parents=True, exist_ok=True)
    (out / "blobs").mkdir(exist_ok=True)
    latest = await pds.query("com.atproto.sync.getLatestCommit", {"did": did})
    fetched = 0
    if latest["rev"] != manifest.rev:
        params = {"did": did, "since": manifest.rev}
        car, _ = await pds.query_bytes("com.atproto.sync.getRepo", params)
        name = f"repo/{len(manifest.segments) + 1:05d}-{latest['rev']}.car"
        _write(out / name, car)
        manifest.segments.append(name)
        manifest.rev = latest["rev"]
        fetched = len(car)
    blobs = 0
    for cid in await _blob_list(pds, did):
        path = out / "blobs" / cid
        if path.exists() and cid in manifest.blob_types:
            continue
        data, mime = await pds.query_bytes("com.atproto.sync.getBlob", {"did": did, "cid": cid})
        if cid_for_raw(data).encode() != cid:
            raise ValueError(f"blob {cid}: the PDS sent bytes of another CID")
        if not is_mime_type(mime):
            raise ValueError(f"blob {cid}: the PDS served it as {mime!r}, not a MIME type")
        _write(path, data)
        manifest.blob_types[cid] = mime
        blobs += 1
    if preferences:
        prefs = await pds.query("app.bsky.actor.getPreferences")
        _write(out / "preferences.json", json.dumps(prefs, indent=2).encode())
    _write(out / MANIFEST, json.dumps(asdict(manifest), indent=2).encode())
    return fetched, blobs


def is_mime_type(text: str) -> bool:
    """`type/subtype`, as a Content-Type names a blob's type (parameters already cut off)."""
    kind, slash, subtype = text.partition("/")
    return bool(slash and _TOKEN.fullmatch(kind) and _TOKEN.fullmatch(subtype))


async def _blob_list(pds: Session, did: str) -> list[str]:
    cids: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"did": did, "limit": PAGE, "cursor": cursor}
        page = await pds.query("com.atproto.sync.listBlobs", params)
        cids += page["cids"]
        cursor = page.get("cursor")
        if not cursor or not page["cids"]:
            return cids


@dataclass(frozen=True)
class BackupReport:
    did: str
    rev: str
    records: int
    blobs: int


def load_repo(out: Path) -> tuple[Manifest, MemoryBlockStore, RepoHead]:
    """The backup's manifest, every block of its segments (each hash-checked) and its head."""
    manifest = load_manifest(out)
    if manifest is None or not manifest.segments or manifest.rev is None:
        raise ValueError(f"{out} holds no backup ({MANIFEST} missing or empty)")
    store = MemoryBlockStore()
    root: CID | None = None
    for segment in manifest.segments:
        with (out / segment).open("rb") as stream:
            car = read_car(stream)
        for cid, block in car.blocks.items():
            store.put(cid, block)
        root = car.root
    assert root is not None
    head = read_head(store, root)
    if head.commit is None or head.commit.did != manifest.did or head.commit.rev != manifest.rev:
        raise ValueError(f"the last segment is not the commit of {manifest.did} at {manifest.rev}")
    return manifest, store, head


def verify_backup(out: Path) -> BackupReport:
    """Check every block hash, the MST, the head commit's signature against the key recorded at
    backup time, every record, and that every blob a record references is there, intact and
    has its MIME type.
    ValueError (or MissingBlock) names the first problem."""
    manifest, store, head = load_repo(out)
    assert head.commit is not None
    if not verify_commit(head.commit, parse_did_key(manifest.signing_key)):
        raise ValueError(f"the head commit's signature does not verify with {manifest.signing_key}")
    records = walk.validate_tree(store, head.data)
    wanted: set[str] = set()
    for key, cid in walk.walk(store, head.data):
        try:
            wanted.update(ref.encode() for ref in blob_refs(cbor.decode(store.get(cid))))
        except ValueError as exc:
            raise ValueError(f"record {key}: {exc}") from exc
    present = {path.name for path in (out / "blobs").iterdir() if not path.name.endswith(".tmp")}
    if missing := sorted(wanted - present):
        raise ValueError(f"{len(missing)} blob(s) referenced but not backed up: {missing[:5]}")
    for name in sorted(present):
        if cid_for_raw((out / "blobs" / name).read_bytes()).encode() != name:
            raise ValueError(f"blob {name}: its bytes do not match its CID")
        if not is_mime_type(manifest.blob_types.get(name, "")):
            raise ValueError(
                f"blob {name}: no MIME type recorded (run `skyloft account backup` again)"
            )
    assert manifest.rev is not None
    return BackupReport(manifest.did, manifest.rev, records, len(present))

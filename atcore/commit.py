"""Signed repository commit objects, version 3 (spec-repository.md, "Commit Objects").

Only v3 is read: v2 commits may lack `rev`, which every consumer here depends on, and no
current repository is published in v2, so reading them is left out rather than half-supported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from atcore import cbor
from atcore.cid import CID, cid_for_cbor
from atcore.errors import DecodeError, InvalidCommit, InvalidSyntax
from atcore.keys import PrivateKey, PublicKey
from atcore.syntax.did import Did, parse_did
from atcore.syntax.tid import Tid, parse_tid

__all__ = ["Commit", "commit_cid", "create_commit", "decode_commit", "verify_commit"]

VERSION = 3
_FIELDS = frozenset({"did", "version", "data", "rev", "prev", "sig"})


@dataclass(frozen=True)
class Commit:
    """A signed v3 commit. `prev` is virtually always None but always present on the wire."""

    did: Did
    data: CID
    rev: Tid
    sig: bytes
    prev: CID | None = None

    def unsigned_bytes(self) -> bytes:
        """The DAG-CBOR of every field but `sig`: the bytes the signature covers."""
        return cbor.encode(_unsigned(self.did, self.data, self.rev, self.prev))

    def encode(self) -> bytes:
        """The DAG-CBOR of the signed commit, as stored in the repo and hashed for its CID."""
        return cbor.encode({**_unsigned(self.did, self.data, self.rev, self.prev), "sig": self.sig})


def create_commit(did: Did, data: CID, rev: Tid, key: PrivateKey) -> tuple[Commit, bytes, CID]:
    """Sign a new commit over MST root `data`; returns it with its block bytes and CID."""
    sig = key.sign(cbor.encode(_unsigned(did, data, rev, None)))
    commit = Commit(did=did, data=data, rev=rev, sig=sig)
    block = commit.encode()
    return commit, block, cid_for_cbor(block)


def commit_cid(commit: Commit) -> CID:
    """The CID of the signed commit block."""
    return cid_for_cbor(commit.encode())


def verify_commit(commit: Commit, public_key: PublicKey) -> bool:
    """True when `sig` is the account key's signature over the unsigned commit."""
    return public_key.verify(commit.unsigned_bytes(), commit.sig)


def decode_commit(block: bytes) -> Commit:
    """Parse a commit block strictly: exactly the v3 fields, each of the right type."""
    try:
        value = cbor.decode(block)
    except DecodeError as exc:
        raise InvalidCommit(f"commit is not DAG-CBOR: {exc}") from exc
    if not isinstance(value, dict):
        raise InvalidCommit("commit is not a map")
    if set(value) != _FIELDS:
        missing, extra = sorted(_FIELDS - set(value)), sorted(set(value) - _FIELDS)
        raise InvalidCommit(f"commit fields wrong: missing {missing}, unexpected {extra}")
    version = value["version"]
    if type(version) is not int or version != VERSION:
        raise InvalidCommit(f"unsupported commit version {version!r:.20} (only 3 is read)")
    if not isinstance(value["did"], str) or not isinstance(value["rev"], str):
        raise InvalidCommit("commit did and rev must be strings")
    try:
        did, rev = parse_did(value["did"]), parse_tid(value["rev"])
    except InvalidSyntax as exc:
        raise InvalidCommit(f"commit {exc}") from exc
    data, prev, sig = value["data"], value["prev"], value["sig"]
    if not _is_node_link(data):
        raise InvalidCommit("commit data must be a dag-cbor CID link")
    if prev is not None and not _is_node_link(prev):
        raise InvalidCommit("commit prev must be null or a dag-cbor CID link")
    if not isinstance(sig, bytes):
        raise InvalidCommit("commit sig must be bytes")
    return Commit(did=did, data=data, rev=rev, sig=sig, prev=prev)


def _unsigned(did: Did, data: CID, rev: Tid, prev: CID | None) -> dict[str, Any]:
    return {"did": did, "version": VERSION, "data": data, "rev": rev, "prev": prev}


def _is_node_link(value: object) -> bool:
    # data and prev point at MST nodes and commits, which are always dag-cbor blocks
    return isinstance(value, CID) and value.is_cidv1_dag_cbor_sha256_32()

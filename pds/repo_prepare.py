"""Checking and encoding record writes before they reach a commit (guide-data-validation.md).

`validate` follows the reference PDS: unset validates records of known lexicons and accepts
others as `validationStatus: unknown`; false skips validation; true refuses unknown lexicons.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from atcore import cbor
from atcore.cid import CID, cid_for_cbor
from atcore.datamodel import blob_refs
from atcore.errors import InvalidRecord, InvalidSyntax
from atcore.lexicon import Catalog, validate_record
from atcore.syntax.nsid import parse_nsid
from atcore.syntax.recordkey import parse_record_key
from atcore.syntax.tid import TidClock
from atcore.xrpc.errors import InvalidRequest

Action = Literal["create", "update", "delete"]
ValidationStatus = Literal["valid", "unknown"]

# The reference PDS's cap on one record's DAG-CBOR size.
MAX_RECORD_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Write:
    """One requested change. `update` of a missing record fails (applyWrites, as the reference
    refuses it) unless `upsert` makes it create the record (putRecord).

    `swap` makes `swap_record` binding: the current record CID must equal it (None: must not
    exist). `if_exists` turns a delete of a missing record into a no-op (deleteRecord).
    """

    action: Action
    collection: str
    rkey: str | None = None
    record: Any = None
    validate: bool | None = None
    swap: bool = False
    swap_record: CID | None = None
    if_exists: bool = False
    upsert: bool = False


@dataclass(frozen=True)
class PreparedWrite:
    action: Action
    collection: str
    rkey: str
    cid: CID | None
    block: bytes | None
    validation: ValidationStatus | None
    swap: bool
    swap_record: CID | None
    if_exists: bool
    blobs: tuple[CID, ...] = ()
    upsert: bool = False

    @property
    def path(self) -> str:
        return f"{self.collection}/{self.rkey}"


def prepare_write(catalog: Catalog, clock: TidClock, write: Write) -> PreparedWrite:
    """Check the write's names and record, and encode the record; InvalidRequest on failure."""
    try:
        collection = parse_nsid(write.collection)
        if write.rkey is not None:
            rkey: str = parse_record_key(write.rkey)
        elif write.action == "create":
            rkey = clock.next()
        else:
            raise InvalidRequest(f"{write.action} needs an rkey")
    except InvalidSyntax as exc:
        raise InvalidRequest(str(exc)) from None
    if write.action == "delete":
        return PreparedWrite(
            "delete",
            collection,
            rkey,
            None,
            None,
            None,
            write.swap,
            write.swap_record,
            write.if_exists,
        )
    record = write.record
    if not isinstance(record, dict):
        raise InvalidRequest("record must be an object")
    record = _with_type(collection, record, write.validate is not False)
    status = _validate(catalog, collection, rkey, record, write.validate)
    try:
        block = cbor.encode(record)
    except (ValueError, TypeError) as exc:
        raise InvalidRequest(f"record is not valid data: {exc}") from None
    if len(block) > MAX_RECORD_BYTES:
        raise InvalidRequest(f"record is larger than {MAX_RECORD_BYTES} bytes", "RecordTooBig")
    return PreparedWrite(
        write.action,
        collection,
        rkey,
        cid_for_cbor(block),
        block,
        status,
        write.swap,
        write.swap_record,
        write.if_exists,
        tuple(blob_refs(record)),
        write.upsert,
    )


def _with_type(collection: str, record: dict[str, Any], check: bool) -> dict[str, Any]:
    # The reference fills in a missing `$type` even when validation is skipped.
    declared = record.get("$type")
    if declared is None:
        return {**record, "$type": collection}
    if check and declared != collection:
        raise InvalidRequest(f"Invalid $type: expected {collection}, got {declared!r:.100}")
    return record


def _validate(
    catalog: Catalog, collection: str, rkey: str, record: dict[str, Any], validate: bool | None
) -> ValidationStatus | None:
    if validate is False:
        return None
    if collection not in catalog:
        if validate:
            raise InvalidRequest(f"Lexicon not found: lex:{collection}")
        return "unknown"
    try:
        validate_record(catalog, collection, record, rkey)
    except InvalidRecord as exc:
        raise InvalidRequest(f"Invalid {collection} record: {exc}") from None
    return "valid"

"""did:plc logs: next-operation rules, recovery, audit replay (plc-did-method-spec-v0.1.md).

The rules, as the spec's "Key Rotation & Account Recovery" and the reference directory apply
them: a new operation's `prev` must be an operation in the DID's current (non-nullified) chain
and not a tombstone. Pointing at the chain's end is a plain update, signed by any rotation key
of `prev`. Pointing further back is a recovery: it nullifies everything after `prev`, and is
allowed only if signed by a rotation key listed strictly before the key that signed the first
operation it nullifies, no more than 72 hours after that operation was accepted, and timestamped
strictly after the newest operation it nullifies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from atcore.errors import InvalidPlcOperation, InvalidSyntax
from atcore.identity.plc import (
    Op,
    check_operation,
    did_for_genesis,
    op_cid,
    rotation_keys_of,
    verify_operation_sig,
)
from atcore.identity.plc_data import operation_data
from atcore.syntax.datetime import format_datetime, parse_datetime

RECOVERY_WINDOW: Final = timedelta(hours=72)
_ENTRY_FIELDS: Final = {"did", "operation", "cid", "nullified", "createdAt"}


def parse_timestamp(text: str) -> datetime:
    """A createdAt string as an aware UTC datetime; InvalidSyntax if it is not one."""
    moment = datetime.fromisoformat(parse_datetime(text))
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        # Valid syntax whose offset carries it past year 1 or 9999 in UTC.
        raise InvalidSyntax(f"datetime out of range in UTC: {text[:80]!r}") from None


@dataclass(frozen=True)
class LogEntry:
    """One accepted operation, as in the directory's `/log/audit` and `/export` output."""

    did: str
    operation: Op
    cid: str
    nullified: bool
    created_at: datetime

    @classmethod
    def from_json(cls, value: object) -> LogEntry:
        if not isinstance(value, dict) or set(value) != _ENTRY_FIELDS:
            raise InvalidPlcOperation(f"audit log entry must have exactly {sorted(_ENTRY_FIELDS)}")
        did, cid, nullified, created = (value[k] for k in ("did", "cid", "nullified", "createdAt"))
        if not (isinstance(did, str) and isinstance(cid, str) and isinstance(created, str)):
            raise InvalidPlcOperation("audit log entry did, cid and createdAt must be strings")
        if not isinstance(nullified, bool):
            raise InvalidPlcOperation("audit log entry 'nullified' must be a boolean")
        try:
            created_at = parse_timestamp(created)
        except InvalidSyntax as exc:
            raise InvalidPlcOperation(f"audit log entry createdAt: {exc}") from exc
        return cls(did, check_operation(value["operation"]), cid, nullified, created_at)

    def to_json(self) -> dict[str, Any]:
        return {
            "did": self.did,
            "operation": self.operation,
            "cid": self.cid,
            "nullified": self.nullified,
            "createdAt": format_datetime(self.created_at),
        }


@dataclass(frozen=True)
class Accepted:
    """What accepting an operation does: its CID, and the CIDs it nullifies (oldest first)."""

    cid: str
    nullifies: tuple[str, ...]


def _check_genesis(did: str, op: Op) -> None:
    if op["type"] == "plc_tombstone":
        raise InvalidPlcOperation("the first operation of a DID cannot be a tombstone")
    if op["prev"] is not None:
        raise InvalidPlcOperation(f"DID not registered: {did} (an update needs an existing DID)")
    derived = did_for_genesis(op)
    if derived != did:
        raise InvalidPlcOperation(f"genesis operation hashes to {derived}, not {did}")
    verify_operation_sig(op, rotation_keys_of(op))


def check_next_op(did: str, chain: Sequence[LogEntry], op: Op, now: datetime) -> Accepted:
    """Check `op` (already shape-checked) against the DID's current chain at time `now`."""
    cid = op_cid(op)
    if not chain:
        _check_genesis(did, op)
        return Accepted(cid, ())
    prev = op["prev"]
    if prev is None:
        raise InvalidPlcOperation(f"DID {did} already exists: an update needs a 'prev'")
    if any(entry.cid == cid for entry in chain):
        raise InvalidPlcOperation(f"operation {cid} is already in the log")
    at = next((i for i, entry in enumerate(chain) if entry.cid == prev), None)
    if at is None:
        raise InvalidPlcOperation(f"prev {prev} is not in the DID's current (non-nullified) log")
    base = chain[at].operation
    if base["type"] == "plc_tombstone":
        raise InvalidPlcOperation(f"prev {prev} is a tombstone: the DID is deactivated")
    keys = rotation_keys_of(base)
    disputed = chain[at + 1 :]
    if not disputed:
        verify_operation_sig(op, keys)
        return Accepted(cid, ())
    first = disputed[0]
    signer = verify_operation_sig(first.operation, keys)
    stronger = keys[: keys.index(signer)]
    try:
        verify_operation_sig(op, stronger)
    except InvalidPlcOperation as exc:
        raise InvalidPlcOperation(
            f"recovery from {prev} must be signed by a rotation key listed before {signer}, "
            f"which signed {first.cid}"
        ) from exc
    if now <= chain[-1].created_at:
        # Strictly later than the newest operation it nullifies, as the reference requires.
        raise InvalidPlcOperation(
            f"recovery timestamped {format_datetime(now)}, not after {chain[-1].cid} "
            f"({format_datetime(chain[-1].created_at)}) which it nullifies"
        )
    if now - first.created_at > RECOVERY_WINDOW:
        raise InvalidPlcOperation(
            f"recovery window passed: {first.cid} was accepted more than 72 hours ago"
        )
    return Accepted(cid, tuple(entry.cid for entry in disputed))


@dataclass(frozen=True)
class PlcState:
    """A DID's replayed log: the current chain (genesis first) and every nullified CID."""

    did: str
    chain: tuple[LogEntry, ...]
    nullified: frozenset[str]

    @property
    def last(self) -> LogEntry:
        return self.chain[-1]

    @property
    def tombstoned(self) -> bool:
        return bool(self.last.operation["type"] == "plc_tombstone")

    def data(self) -> dict[str, Any]:
        """The current DID state (`/data` shape); InvalidPlcOperation if tombstoned."""
        return {"did": self.did, **operation_data(self.last.operation)}


def validate_log(did: str, entries: Sequence[LogEntry]) -> PlcState:
    """Replay an audit log (oldest first), checking every rule and every `cid`/`nullified` claim."""
    if not entries:
        raise InvalidPlcOperation(f"empty log for {did}")
    chain: list[LogEntry] = []
    nullified: set[str] = set()
    for index, entry in enumerate(entries):
        if entry.did != did:
            raise InvalidPlcOperation(f"entry {index} is for {entry.did}, not {did}")
        try:
            accepted = check_next_op(did, chain, entry.operation, entry.created_at)
        except InvalidPlcOperation as exc:
            raise InvalidPlcOperation(f"entry {index} ({entry.cid}): {exc}") from exc
        if accepted.cid != entry.cid:
            raise InvalidPlcOperation(f"entry {index} claims CID {entry.cid}, is {accepted.cid}")
        if accepted.nullifies:
            nullified.update(accepted.nullifies)
            chain = [e for e in chain if e.cid not in nullified]
        chain.append(entry)
    for index, entry in enumerate(entries):
        if entry.nullified != (entry.cid in nullified):
            raise InvalidPlcOperation(
                f"entry {index} ({entry.cid}) claims nullified={entry.nullified}, "
                f"replay gives {entry.cid in nullified}"
            )
    return PlcState(did, tuple(chain), frozenset(nullified))

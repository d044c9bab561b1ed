"""What this directory accepts from a client beyond the log rules (plc-did-method-spec-v0.1.md).

The spec's rules hold for every log and are checked on replay (atcore.identity.plc_log). A
directory refuses more from new submissions, as the reference directory does (did-method-plc
`packages/server/src/constraints.ts`): no new legacy `create` operations, bounded sizes and
counts, and a per-DID rate of operations. Logs that already hold an operation these refuse
(a legacy create, duplicated or no rotation keys, all in the official vectors) stay valid.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Final

from atcore.errors import InvalidPlcOperation
from atcore.identity.plc import Op, check_operation
from atcore.identity.plc_log import LogEntry

# The public directory's limit since 2023; the spec allows 7500 bytes.
DEFAULT_MAX_OP_BYTES: Final = 4000
MAX_ALIASES: Final = 10
MAX_ALIAS_LENGTH: Final = 258  # a 253-character handle behind "at://"
MAX_SERVICES: Final = 10
MAX_ID_LENGTH: Final = 32
MAX_SERVICE_TYPE_LENGTH: Final = 256
MAX_ENDPOINT_LENGTH: Final = 512
MAX_METHOD_KEY_LENGTH: Final = 256
# A DID may have fewer than this many operations in the window before a new one is accepted.
RATE_WINDOWS: Final = (
    ("hour", timedelta(hours=1), 10),
    ("day", timedelta(days=1), 30),
    ("week", timedelta(weeks=1), 100),
)


def _length(text: str) -> int:
    # The reference measures JavaScript strings: UTF-16 code units, so count the same way.
    return len(text.encode("utf-16-le")) // 2


def _fail(message: str) -> InvalidPlcOperation:
    return InvalidPlcOperation(message)


def _check_distinct(values: Iterable[str], what: str) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise _fail(f"duplicate {what}: {value!r:.100}")
        seen.add(value)


def _check_rotation_keys(keys: Sequence[str]) -> None:
    if not keys:
        raise _fail("an operation needs at least one rotation key (none would lock the DID)")
    _check_distinct(keys, "rotation key")


def _check_aliases(aliases: Sequence[str]) -> None:
    if len(aliases) > MAX_ALIASES:
        raise _fail(f"too many alsoKnownAs entries: {len(aliases)} (max {MAX_ALIASES})")
    for alias in aliases:
        if _length(alias) > MAX_ALIAS_LENGTH:
            raise _fail(f"alsoKnownAs entry too long (max {MAX_ALIAS_LENGTH}): {alias!r:.100}")
    _check_distinct(aliases, "alsoKnownAs entry")


def _check_id(name: str, what: str) -> None:
    if _length(name) > MAX_ID_LENGTH:
        raise _fail(f"{what} id too long (max {MAX_ID_LENGTH}): {name!r:.100}")


def _check_services(services: dict[str, dict[str, str]]) -> None:
    if len(services) > MAX_SERVICES:
        raise _fail(f"too many services: {len(services)} (max {MAX_SERVICES})")
    for name, service in services.items():
        _check_id(name, "service")
        if _length(service["type"]) > MAX_SERVICE_TYPE_LENGTH:
            raise _fail(f"service {name!r} type too long (max {MAX_SERVICE_TYPE_LENGTH})")
        if _length(service["endpoint"]) > MAX_ENDPOINT_LENGTH:
            raise _fail(f"service {name!r} endpoint too long (max {MAX_ENDPOINT_LENGTH})")


def _check_methods(methods: dict[str, str]) -> None:
    # Their count (at most 10) is a spec rule, checked by check_operation.
    for name, key in methods.items():
        _check_id(name, "verification method")
        if _length(key) > MAX_METHOD_KEY_LENGTH:
            raise _fail(f"verification method {name!r} key too long (max {MAX_METHOD_KEY_LENGTH})")


def check_incoming_op(op: object, max_bytes: int) -> Op:
    """Check a submitted operation: the spec's shape, then this directory's limits."""
    checked = check_operation(op, max_bytes)
    kind = checked["type"]
    if kind == "create":
        raise _fail("legacy 'create' operations are no longer accepted: submit a plc_operation")
    if kind == "plc_operation":
        _check_rotation_keys(checked["rotationKeys"])
        _check_aliases(checked["alsoKnownAs"])
        _check_services(checked["services"])
        _check_methods(checked["verificationMethods"])
    return checked


def check_op_rate(chain: Sequence[LogEntry], now: datetime) -> None:
    """Refuse a DID's next operation if its current chain is at a window's limit already.

    Recovery operations are not limited (the directory does not call this for them), or whoever
    holds a weaker rotation key could spend the DID's budget and block its recovery.
    """
    for name, window, limit in RATE_WINDOWS:
        recent = sum(1 for entry in chain if entry.created_at > now - window)
        if recent >= limit:
            raise _fail(f"too many operations for this DID within the last {name} (max {limit})")

"""did:plc operations: shape, signing, hashing, builders (plc-did-method-spec-v0.1.md).

Operations stay in their JSON shape (plain dicts): that is what clients sign, what the
directory stores and serves, and DAG-CBOR of exactly that dict is what is hashed. `prev` is a
CID *string*, never a link, as the spec requires.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Sequence
from typing import Any, Final

from atcore import cbor
from atcore.cid import cid_for_cbor, parse_cid
from atcore.errors import DecodeError, InvalidCid, InvalidKey, InvalidPlcOperation
from atcore.keys import PrivateKey, parse_did_key

Op = dict[str, Any]

MAX_OP_BYTES: Final = 7500  # DAG-CBOR size of a signed operation (spec, anti-abuse limit)
MAX_ROTATION_KEYS: Final = 5
MAX_VERIFICATION_METHODS: Final = 10
PDS_SERVICE: Final = "atproto_pds"
PDS_SERVICE_TYPE: Final = "AtprotoPersonalDataServer"
SIGNING_KEY_ID: Final = "atproto"

_FIELDS: Final = {
    "plc_operation": {
        "type",
        "rotationKeys",
        "verificationMethods",
        "alsoKnownAs",
        "services",
        "prev",
        "sig",
    },
    "plc_tombstone": {"type", "prev", "sig"},
    "create": {"type", "signingKey", "recoveryKey", "handle", "service", "prev", "sig"},
}
# 64 signature bytes are 86 base64url characters; the last one carries 2 padding bits.
_SIG_RE: Final = re.compile(r"[A-Za-z0-9_-]{86}")
# verificationMethods may hold any did:key type, but it must still be did:key + base58btc.
_ANY_DID_KEY_RE: Final = re.compile(r"did:key:z[1-9A-HJ-NP-Za-km-z]+")
# JSON "\ud800" decodes to a lone surrogate: a Python str, not Unicode text, not DAG-CBOR.
_SURROGATE_RE: Final = re.compile("[\ud800-\udfff]")


def _fail(message: str) -> InvalidPlcOperation:
    return InvalidPlcOperation(message)


def _str(op: Op, name: str) -> str:
    value = op.get(name)
    if not isinstance(value, str):
        raise _fail(f"{op.get('type')} field {name!r} must be a string")
    return value


def _str_list(op: Op, name: str) -> list[str]:
    value = op.get(name)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _fail(f"field {name!r} must be an array of strings")
    return value


def _check_rotation_key(key: str) -> None:
    try:
        parse_did_key(key)
    except InvalidKey as exc:
        raise _fail(f"unsupported rotation key {key!r:.100}: {exc}") from exc


def _check_plc_operation(op: Op) -> None:
    rotation_keys = _str_list(op, "rotationKeys")
    if len(rotation_keys) > MAX_ROTATION_KEYS:
        raise _fail(f"too many rotation keys ({len(rotation_keys)} > {MAX_ROTATION_KEYS})")
    for key in rotation_keys:
        _check_rotation_key(key)
    methods = op.get("verificationMethods")
    if not isinstance(methods, dict) or not all(isinstance(v, str) for v in methods.values()):
        raise _fail("field 'verificationMethods' must map names to did:key strings")
    if len(methods) > MAX_VERIFICATION_METHODS:
        raise _fail(f"too many verification methods ({len(methods)} > {MAX_VERIFICATION_METHODS})")
    for name, key in methods.items():
        if _ANY_DID_KEY_RE.fullmatch(key) is None:
            raise _fail(f"verification method {name!r} is not a did:key: {key!r:.100}")
    _str_list(op, "alsoKnownAs")
    services = op.get("services")
    if not isinstance(services, dict):
        raise _fail("field 'services' must be an object")
    for name, service in services.items():
        if (
            not isinstance(service, dict)
            or set(service) != {"type", "endpoint"}
            or not all(isinstance(v, str) for v in service.values())
        ):
            raise _fail(f"service {name!r} must be an object with string 'type' and 'endpoint'")


def _is_text(value: object) -> bool:
    """Every string in `value` (map keys included) is Unicode text: no lone surrogates."""
    if isinstance(value, str):
        return _SURROGATE_RE.search(value) is None
    if isinstance(value, dict):
        return all(_is_text(k) and _is_text(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_is_text(v) for v in value)
    return True


def check_operation(op: object, max_bytes: int = MAX_OP_BYTES) -> Op:
    """Check an operation's shape, keys and DAG-CBOR size (not its signature); return it.

    `max_bytes` lets a directory hold incoming operations to a lower limit than the spec's.
    """
    if not isinstance(op, dict):
        raise _fail("operation must be a JSON object")
    kind = op.get("type")
    fields = _FIELDS.get(kind) if isinstance(kind, str) else None
    if fields is None:
        raise _fail(f"unknown operation type {kind!r:.40}")
    if set(op) != fields:
        missing, extra = sorted(fields - set(op)), sorted(set(op) - fields)
        raise _fail(f"{kind} fields wrong: missing {missing}, unexpected {extra}")
    prev = op["prev"]
    if prev is not None:
        if not isinstance(prev, str):
            raise _fail("'prev' must be a CID string or null")
        try:
            parse_cid(prev)
        except InvalidCid as exc:
            raise _fail(f"'prev' is not a CID: {exc}") from exc
    if kind == "plc_operation":
        _check_plc_operation(op)
    elif kind == "plc_tombstone":
        if prev is None:
            raise _fail("a tombstone must have a 'prev'")
    else:
        if prev is not None:
            raise _fail("a legacy create operation must have 'prev': null")
        for name in ("signingKey", "recoveryKey", "handle", "service"):
            _str(op, name)
        for name in ("signingKey", "recoveryKey"):
            _check_rotation_key(op[name])
    decode_sig(_str(op, "sig"))
    # After the shape checks, which bound the nesting this walks.
    if not _is_text(op):
        raise _fail("operation holds a string that is not Unicode text (a lone UTF-16 surrogate)")
    try:
        size = len(cbor.encode(op))
    except DecodeError as exc:
        raise _fail(f"operation is outside the data model: {exc}") from exc
    if size > max_bytes:
        raise _fail(f"operation is {size} bytes of DAG-CBOR, over the {max_bytes} limit")
    return op


def decode_sig(sig: str) -> bytes:
    """Strict base64url: no padding, no whitespace, zero padding bits, exactly 64 bytes."""
    if _SIG_RE.fullmatch(sig) is None:
        raise _fail("signature must be 86 characters of unpadded base64url (64 bytes)")
    raw = base64.urlsafe_b64decode(sig + "==")
    if _encode_sig(raw) != sig:
        raise _fail("signature has non-zero base64url padding bits")
    return raw


def _encode_sig(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def unsigned_bytes(op: Op) -> bytes:
    """DAG-CBOR of the operation without its `sig` field: the bytes that get signed."""
    return cbor.encode({k: v for k, v in op.items() if k != "sig"})


def sign_operation(op: Op, key: PrivateKey) -> Op:
    """A copy of `op` signed by `key` (compact low-S, base64url without padding)."""
    unsigned = {k: v for k, v in op.items() if k != "sig"}
    return {**unsigned, "sig": _encode_sig(key.sign(cbor.encode(unsigned)))}


def verify_operation_sig(op: Op, rotation_keys: Sequence[str]) -> str:
    """The first of `rotation_keys` whose signature `op` carries; InvalidPlcOperation if none."""
    sig = decode_sig(_str(op, "sig"))
    data = unsigned_bytes(op)
    for did_key in rotation_keys:
        try:
            key = parse_did_key(did_key)
        except InvalidKey:
            continue
        if key.verify(data, sig):
            return did_key
    raise _fail("invalid signature: no allowed rotation key signed this operation")


def op_cid(signed_op: Op) -> str:
    """The operation's CID string (CIDv1, dag-cbor, sha-256, base32), as `prev` refers to it."""
    return cid_for_cbor(cbor.encode(signed_op)).encode()


def did_for_genesis(signed_op: Op) -> str:
    """did:plc: + the first 24 characters of base32(sha256(DAG-CBOR of the signed genesis op))."""
    digest = hashlib.sha256(cbor.encode(signed_op)).digest()
    return "did:plc:" + base64.b32encode(digest).decode("ascii").lower()[:24]


def normalize_op(op: Op) -> Op:
    """A legacy `create` op as the equivalent `plc_operation`; other ops unchanged."""
    if op["type"] != "create":
        return op
    handle: str = op["handle"]
    if not handle.startswith("at://"):
        handle = "at://" + handle.removeprefix("https://").removeprefix("http://")
    service: str = op["service"]
    if not service.startswith(("http://", "https://")):
        service = "https://" + service
    return {
        "type": "plc_operation",
        "verificationMethods": {SIGNING_KEY_ID: op["signingKey"]},
        "rotationKeys": [op["recoveryKey"], op["signingKey"]],
        "alsoKnownAs": [handle],
        "services": {PDS_SERVICE: {"type": PDS_SERVICE_TYPE, "endpoint": service}},
        "prev": op["prev"],
        "sig": op["sig"],
    }


def rotation_keys_of(op: Op) -> list[str]:
    """The rotation keys an operation puts in force (none for a tombstone)."""
    if op["type"] == "plc_tombstone":
        return []
    keys: list[str] = normalize_op(op)["rotationKeys"]
    return keys


def genesis_op(*, signing_key: str, rotation_keys: Sequence[str], handle: str, pds: str) -> Op:
    """An unsigned genesis `plc_operation` for an atproto account (sign it with a rotation key)."""
    return {
        "type": "plc_operation",
        "rotationKeys": list(rotation_keys),
        "verificationMethods": {SIGNING_KEY_ID: signing_key},
        "alsoKnownAs": ["at://" + handle],
        "services": {PDS_SERVICE: {"type": PDS_SERVICE_TYPE, "endpoint": pds}},
        "prev": None,
    }


def update_op(
    prev_op: Op,
    prev_cid: str,
    *,
    handle: str | None = None,
    pds: str | None = None,
    signing_key: str | None = None,
    rotation_keys: Sequence[str] | None = None,
) -> Op:
    """An unsigned update of `prev_op` changing only the given fields; other entries are kept."""
    if prev_op["type"] == "plc_tombstone":
        raise _fail("cannot update a tombstoned DID")
    base = normalize_op(prev_op)
    aliases: list[str] = list(base["alsoKnownAs"])
    if handle is not None:
        # Replace the first at:// alias in place (it is the claimed handle); keep the others.
        at = next((i for i, a in enumerate(aliases) if a.startswith("at://")), None)
        if at is None:
            aliases.insert(0, "at://" + handle)
        else:
            aliases[at] = "at://" + handle
    services = dict(base["services"])
    if pds is not None:
        services[PDS_SERVICE] = {"type": PDS_SERVICE_TYPE, "endpoint": pds}
    methods = dict(base["verificationMethods"])
    if signing_key is not None:
        methods[SIGNING_KEY_ID] = signing_key
    return {
        "type": "plc_operation",
        "rotationKeys": list(base["rotationKeys"] if rotation_keys is None else rotation_keys),
        "verificationMethods": methods,
        "alsoKnownAs": aliases,
        "services": services,
        "prev": prev_cid,
    }


def tombstone_op(prev_cid: str) -> Op:
    """An unsigned tombstone, permanently deactivating the DID once the recovery window passes."""
    return {"type": "plc_tombstone", "prev": prev_cid}

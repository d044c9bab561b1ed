"""did:plc state as served: the /data shape and the DID document (plc-did-method-spec-v0.1.md).

The DID document follows what the reference directory serves ("Presentation as DID Document"
in the spec, and spec-did.md): Multikey verification methods named `<did>#<id>`, services named
`#<id>`, and one security-suite context per curve in use.
"""

from __future__ import annotations

from typing import Any, Final

from atcore.errors import InvalidKey, InvalidPlcOperation
from atcore.identity.plc import Op, normalize_op
from atcore.keys import parse_did_key

_BASE_CONTEXT: Final = ("https://www.w3.org/ns/did/v1", "https://w3id.org/security/multikey/v1")
_CURVE_CONTEXT: Final = {
    "k256": "https://w3id.org/security/suites/secp256k1-2019/v1",
    "p256": "https://w3id.org/security/suites/ecdsa-2019/v1",
}
_DID_KEY_PREFIX: Final = "did:key:"


def operation_data(op: Op) -> dict[str, Any]:
    """The DID state an operation sets (`/data` without `did`); legacy ops are normalised."""
    if op["type"] == "plc_tombstone":
        raise InvalidPlcOperation("a tombstone carries no DID data")
    full = normalize_op(op)
    return {
        "rotationKeys": list(full["rotationKeys"]),
        "verificationMethods": dict(full["verificationMethods"]),
        "alsoKnownAs": list(full["alsoKnownAs"]),
        "services": {name: dict(svc) for name, svc in full["services"].items()},
    }


def _curve_context(did_key: str) -> str | None:
    try:
        return _CURVE_CONTEXT.get(parse_did_key(did_key).curve)
    except InvalidKey:
        # Since spec v0.2 a verification method may be any did:key type; no suite for those.
        return None


def did_document(did: str, data: dict[str, Any]) -> dict[str, Any]:
    """The W3C DID document for a DID whose current state is `data` (operation_data's shape)."""
    context = list(_BASE_CONTEXT)
    methods = []
    for name, did_key in data["verificationMethods"].items():
        suite = _curve_context(did_key)
        if suite is not None and suite not in context:
            context.append(suite)
        methods.append(
            {
                "id": f"{did}#{name}",
                "type": "Multikey",
                "controller": did,
                "publicKeyMultibase": did_key.removeprefix(_DID_KEY_PREFIX),
            }
        )
    services = [
        {"id": f"#{name}", "type": svc["type"], "serviceEndpoint": svc["endpoint"]}
        for name, svc in data["services"].items()
    ]
    return {
        "@context": context,
        "id": did,
        "alsoKnownAs": list(data["alsoKnownAs"]),
        "verificationMethod": methods,
        "service": services,
    }

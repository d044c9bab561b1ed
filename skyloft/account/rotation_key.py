"""`skyloft account rotation-key add | undo`: a K-256 rotation key the person keeps, listed
above the PDS's own, and using it to undo operations (plc-did-method-spec-v0.1.md, "Key
Rotation & Account Recovery"; guide-account-recovery.md).

With it the person can sign PLC operations without any PDS: move the DID when the server is
gone, or, within the 72-hour recovery window, override an operation a server signed against
their will (a key earlier in `rotationKeys` wins). The key is written to its file (mode 0600)
before the DID document changes, so it cannot be lost after it counts.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

from atcore.identity.plc import sign_operation, update_op
from atcore.identity.plc_client import PlcClient
from atcore.keys import PrivateKey, generate_k256
from skyloft.account.identity import plc_code
from skyloft.account.person import MigrationError, Prompts
from skyloft.account.session import Session

# The PLC directory accepts at most this many rotation keys.
MAX_ROTATION_KEYS: Final = 5


def write_key(path: Path, key: PrivateKey) -> None:
    """The private key as hex, readable by its owner only; an existing file is never replaced."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(key.hex() + "\n")
        out.flush()
        os.fsync(out.fileno())


async def add_rotation_key(
    pds: Session,
    plc: PlcClient,
    did: str,
    key_path: Path,
    plc_token: str | None,
    prompts: Prompts,
) -> PrivateKey:
    """Create the key, have the PDS sign the operation, save the key, submit; the key."""
    current = (await plc.get_document_data(did))["rotationKeys"]
    if len(current) >= MAX_ROTATION_KEYS:
        raise MigrationError(f"{did} has {len(current)} rotation keys, the most PLC allows")
    token = await plc_code(pds, plc_token, prompts)
    key = generate_k256()
    did_key = key.public_key().did_key()
    signed = await pds.procedure(
        "com.atproto.identity.signPlcOperation",
        {"token": token, "rotationKeys": [did_key, *current]},
    )
    write_key(key_path, key)
    submit = "com.atproto.identity.submitPlcOperation"
    await pds.procedure(submit, {"operation": signed["operation"]})
    now = (await plc.get_document_data(did))["rotationKeys"]
    if now[:1] != [did_key]:
        raise MigrationError(f"the PLC directory lists {now}, not {did_key} first")
    return key


async def undo_operations(plc: PlcClient, did: str, key: PrivateKey, count: int) -> list[str]:
    """Nullify the DID's last `count` operations by restoring the state before them, signed by
    `key`; the CIDs undone. The directory allows it only within 72 hours of the first one
    undone, and only if `key` is listed before the key that signed it."""
    chain = [entry for entry in await plc.get_audit_log(did) if not entry["nullified"]]
    if not 0 < count < len(chain):
        raise MigrationError(f"{did} has {len(chain) - 1} operation(s) after its creation")
    base = chain[-1 - count]
    restore = update_op(base["operation"], base["cid"])
    await plc.submit(did, sign_operation(restore, key))
    return [entry["cid"] for entry in chain[-count:]]

"""`skyloft account recover`: move an account to a new PDS with the old one gone, from a backup
and the person's own rotation key (guide-account-recovery.md, "Using Your Key for Recovery";
plc-did-method-spec-v0.1.md; spec-account.md).

No step needs the old PDS. The rotation key first names a throwaway signing key in the DID
document, which signs the service token `createAccount` on the new PDS asks for; the backup is
imported with its blobs and preferences; the rotation key then signs the final operation: the
new PDS's endpoint, signing key and rotation key (the old PDS's key is dropped), with the
person's key still first. Every step looks at the servers before acting, so running the
command again after a failure continues.
"""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path
from typing import Any, Final

from atcore.car import write_car
from atcore.identity.plc import op_cid, sign_operation, update_op
from atcore.identity.plc_client import PlcClient
from atcore.identity.resolver import IdentityResolver
from atcore.jwt import encode_es
from atcore.keys import PrivateKey, generate_k256
from atcore.repo import export_blocks
from atcore.xrpc.client import XrpcClientError
from skyloft.account.backup import Manifest, load_repo
from skyloft.account.blobs import missing_blobs
from skyloft.account.identity import points_at
from skyloft.account.person import MigrationError
from skyloft.account.session import Session

CREATE: Final = "com.atproto.server.createAccount"
TOKEN_SECONDS: Final = 300


async def recover(
    backup_dir: Path,
    rotation_key: PrivateKey,
    new: Session,
    plc: PlcClient,
    resolver: IdentityResolver,
    password: str,
    account: dict[str, str | None],
) -> str:
    """Recover the backed-up account onto `new`; its DID. `account` holds the optional
    handle, email and inviteCode for the new account."""
    manifest, store, head = load_repo(backup_dir)
    did = manifest.did
    data = await plc.get_document_data(did)
    mine = rotation_key.public_key().did_key()
    if mine not in data["rotationKeys"]:
        raise MigrationError(f"{mine} is not a rotation key of {did}")
    try:
        await new.login(did, password)
    except XrpcClientError as exc:
        if exc.status != 401:
            raise
        await _create(did, data, rotation_key, new, plc, password, account)
    car = write_car(head.root, export_blocks(store, head))
    await new.procedure("com.atproto.repo.importRepo", car, encoding="application/vnd.ipld.car")
    await _upload_blobs(backup_dir, manifest, new)
    prefs = backup_dir / "preferences.json"
    if prefs.exists():
        await new.procedure("app.bsky.actor.putPreferences", json.loads(prefs.read_text()))
    creds = await new.query("com.atproto.identity.getRecommendedDidCredentials")
    if not await points_at(resolver, did, creds):
        last = await plc.get_last_op(did)
        final = {
            "type": "plc_operation",
            "rotationKeys": [mine, *(k for k in creds["rotationKeys"] if k != mine)],
            "verificationMethods": creds["verificationMethods"],
            "alsoKnownAs": creds["alsoKnownAs"],
            "services": creds["services"],
            "prev": op_cid(last),
        }
        await plc.submit(did, sign_operation(final, rotation_key))
    if not (await new.query("com.atproto.server.getSession")).get("active", True):
        await new.procedure("com.atproto.server.activateAccount")
    return did


async def _create(
    did: str,
    data: dict[str, Any],
    rotation_key: PrivateKey,
    new: Session,
    plc: PlcClient,
    password: str,
    account: dict[str, str | None],
) -> None:
    """The account on the new PDS, proven with a token from a throwaway key the rotation key
    put in the DID document for the purpose."""
    throwaway = generate_k256()
    last = await plc.get_last_op(did)
    op = update_op(last, op_cid(last), signing_key=throwaway.public_key().did_key())
    await plc.submit(did, sign_operation(op, rotation_key))
    server = await new.query("com.atproto.server.describeServer")
    now = int(time.time())
    claims = {
        "iss": did,
        "aud": server["did"],
        "lxm": CREATE,
        "iat": now,
        "exp": now + TOKEN_SECONDS,
        "jti": secrets.token_hex(16),
    }
    aliases = [a.removeprefix("at://") for a in data["alsoKnownAs"] if a.startswith("at://")]
    handle = account.get("handle") or (aliases[0] if aliases else None)
    if handle is None:
        raise MigrationError(f"{did} claims no handle: give one with --new-handle")
    body = {"did": did, "handle": handle, "password": password}
    body |= {k: v for k, v in account.items() if k != "handle" and v}
    new.client.auth_header = f"Bearer {encode_es(claims, throwaway)}"
    new.adopt(await new.client.procedure(CREATE, body))
    new.remember(did, password)


async def _upload_blobs(backup_dir: Path, manifest: Manifest, new: Session) -> None:
    """Each blob the new PDS misses, as the type the old PDS served it with (a backup made
    before types were kept leaves the new PDS to recognise images by their bytes)."""
    for cid in await missing_blobs(new):
        path = backup_dir / "blobs" / cid
        if not path.exists():
            raise MigrationError(f"blob {cid} is not in the backup")
        mime = manifest.blob_types.get(cid, "application/octet-stream")
        await new.procedure("com.atproto.repo.uploadBlob", path.read_bytes(), encoding=mime)

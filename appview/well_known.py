"""`/.well-known/did.json`: the appview's did:web document, naming its signing key and its
`#bsky_appview` and `#bsky_notif` services, as the reference appview serves it (spec-did.md)."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from appview.context import ctx_of
from atcore.keys import PrivateKey, generate_k256, private_key_from_hex
from atcore.xrpc.errors import error_body


def load_signing_key(path: Path) -> PrivateKey:
    """The service's K-256 key, generated into the data directory on first start."""
    if path.exists():
        return private_key_from_hex("k256", path.read_text().strip())
    key = generate_k256()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(key.hex())
    path.chmod(0o600)
    return key


async def did_json(request: Request) -> Response:
    ctx = ctx_of(request)
    did = ctx.config.did
    if not did.startswith("did:web:"):
        return JSONResponse(error_body("NotFound", "no did:web document here"), 404)
    endpoint = ctx.config.base_url
    return JSONResponse(
        {
            "@context": ["https://www.w3.org/ns/did/v1", "https://w3id.org/security/multikey/v1"],
            "id": did,
            "verificationMethod": [
                {
                    "id": f"{did}#atproto",
                    "type": "Multikey",
                    "controller": did,
                    "publicKeyMultibase": ctx.signing_key.public_key().multibase(),
                }
            ],
            "service": [
                {
                    "id": "#bsky_notif",
                    "type": "BskyNotificationService",
                    "serviceEndpoint": endpoint,
                },
                {"id": "#bsky_appview", "type": "BskyAppView", "serviceEndpoint": endpoint},
            ],
        }
    )


def _service(service_id: str, kind: str, endpoint: str) -> dict[str, str]:
    return {"id": service_id, "type": kind, "serviceEndpoint": endpoint}


ROUTES = [Route("/.well-known/did.json", did_json)]

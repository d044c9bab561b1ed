"""CORS for XRPC services, open to every origin like the reference PDS (spec-xrpc.md: encouraged).

Browsers' apps call any PDS or appview directly, so any origin may call us; there are no
cookies, credentials travel in headers. Preflights allow whatever headers the page asks for
(the reference echoes them too), which covers `authorization`, `atproto-proxy`,
`atproto-accept-labelers` and `dpop`; responses expose the headers clients act on.
"""

from __future__ import annotations

from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

ALLOW_METHODS = ("GET", "HEAD", "PUT", "PATCH", "POST", "DELETE")
EXPOSE_HEADERS = (
    "ratelimit-limit",
    "ratelimit-remaining",
    "ratelimit-reset",
    "ratelimit-policy",
    "retry-after",
    "dpop-nonce",
    "www-authenticate",
    "content-language",
    "atproto-repo-rev",
    "atproto-content-labelers",
)
# Browsers may cache a preflight answer this long (seconds); they cap it themselves.
PREFLIGHT_MAX_AGE = 86400


def cors_middleware() -> Middleware:
    """The CORS middleware to put outermost in a service's Starlette app."""
    return Middleware(
        CORSMiddleware,
        allow_origins=["*"],
        allow_methods=ALLOW_METHODS,
        allow_headers=["*"],
        expose_headers=EXPOSE_HEADERS,
        max_age=PREFLIGHT_MAX_AGE,
    )

"""The did:web of a host (spec-did.md): its name, with a port's colon percent-encoded."""

from __future__ import annotations


def did_web(host: str) -> str:
    """`did:web:` and `host` (`name` or `name:port`), the colon of a port written `%3A`."""
    return "did:web:" + host.replace(":", "%3A")

"""Handle resolution by DNS TXT record `_atproto.<handle>` (spec-handle.md, "DNS TXT Method")."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Final

import dns.asyncresolver
import dns.exception
import dns.rdtypes.txtbase
import dns.resolver

from atcore.errors import ResolutionFailed
from atcore.syntax.did import Did, is_valid_did

# Takes the full record name, returns each TXT record's value (its strings joined).
TxtLookup = Callable[[str], Awaitable[list[str]]]

_PREFIX: Final = "did="
# A name can hold many TXT records; only a few are ever meant for us.
MAX_RECORDS: Final = 32


def parse_atproto_txt(values: Iterable[str]) -> Did | None:
    """The DID named by the `did=` records, or None if there is none or they disagree.

    Records without the prefix are ignored, as are `did=` records whose value is not a DID.
    Several records naming the same DID are harmless; two different DIDs make the answer
    ambiguous and resolution fails, as the spec requires.
    """
    found: set[str] = set()
    for value in values:
        if value.startswith(_PREFIX) and is_valid_did(value[len(_PREFIX) :]):
            found.add(value[len(_PREFIX) :])
    return Did(found.pop()) if len(found) == 1 else None


class DnsTxtLookup:
    """TXT lookups through a recursive resolver (dnspython): the system's configured one, or
    `nameservers` (and `port`) when given, e.g. a trusted resolver or a local test server."""

    def __init__(
        self, timeout: float, *, nameservers: list[str] | None = None, port: int = 53
    ) -> None:
        self._timeout = timeout
        self._nameservers = nameservers
        self._port = port
        self._resolver: dns.asyncresolver.Resolver | None = None

    async def __call__(self, name: str) -> list[str]:
        try:
            if self._resolver is None:
                self._resolver = self._make_resolver()
            answer = await self._resolver.resolve(name, "TXT", lifetime=self._timeout)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except dns.exception.DNSException as exc:
            raise ResolutionFailed(f"DNS TXT lookup of {name} failed: {exc}") from exc
        values: list[str] = []
        for rdata in list(answer)[:MAX_RECORDS]:
            if isinstance(rdata, dns.rdtypes.txtbase.TXTBase):
                values.append(b"".join(rdata.strings).decode("utf-8", errors="replace"))
        return values

    def _make_resolver(self) -> dns.asyncresolver.Resolver:
        # Built on first use: reading /etc/resolv.conf fails in a process without DNS set up.
        if self._nameservers is None:
            return dns.asyncresolver.Resolver()
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = list(self._nameservers)
        resolver.port = self._port
        return resolver

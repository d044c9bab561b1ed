"""Refuse outbound fetches to non-public addresses (DESIGN.md "Verify, then trust": SSRF guard).

Used for every host a user controls: handle and did:web domains, requestCrawl hosts and the
PDSes of the relay's repos, proxy targets in the PDS, through atcore.identity.pinned, which
connects to the very addresses checked here. Development networks opt out with `allow_private`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from atcore.errors import UnsafeAddress

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
HostLookup = Callable[[str], Awaitable[list[str]]]

# IPv6 forms that embed an IPv4 address: judge them by that address (NAT64 would otherwise let
# 64:ff9b::7f00:1 reach 127.0.0.1 through a translator).
_NAT64: Final = ipaddress.IPv6Network("64:ff9b::/96")


def is_public_address(address: IPAddress) -> bool:
    """True only for globally routable unicast addresses.

    `is_global` already excludes private, loopback, link-local, unspecified, documentation and
    carrier-grade NAT (100.64.0.0/10) ranges; multicast and reserved space are excluded on top.
    """
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_v4(address)
        if embedded is not None:
            return is_public_address(embedded)
    return address.is_global and not (address.is_multicast or address.is_reserved)


def _embedded_v4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    return None


def parse_ip_literal(host: str) -> IPAddress | None:
    """The address if `host` is an IP literal (optionally in [brackets]), else None."""
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


async def system_lookup(host: str) -> list[str]:
    """All addresses the system resolver gives for `host` (A and AAAA)."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, None, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return [str(info[4][0]) for info in infos]


@dataclass(frozen=True)
class AddressGuard:
    """Resolves a host once and says which addresses a connection to it may use.

    Outside `allow_private` every resolved address must be public and IP literals are refused
    (atproto identifies servers by DNS name); every address is checked, not just the first,
    since a client may try any of them. The caller must connect to the returned addresses
    themselves, never resolve the name again: a second answer may differ (DNS rebinding).
    `allow_private` (development networks) admits any address and IP literals.
    """

    allow_private: bool = False
    lookup: HostLookup = system_lookup

    async def addresses(self, host: str) -> list[str]:
        """The addresses to connect to for `host`; UnsafeAddress if there is none allowed."""
        literal = parse_ip_literal(host)
        if literal is not None:
            if not self.allow_private:
                raise UnsafeAddress(f"refusing IP address host {host[:100]!r}")
            return [str(literal)]
        try:
            found = await self.lookup(host)
        except (OSError, UnicodeError) as exc:
            raise UnsafeAddress(f"cannot resolve host {host[:100]!r}: {exc}") from exc
        if not found:
            raise UnsafeAddress(f"host {host[:100]!r} has no addresses")
        addresses = []
        for text in found:
            address = parse_ip_literal(text)
            if address is None or not (self.allow_private or is_public_address(address)):
                raise UnsafeAddress(f"host {host[:100]!r} resolves to non-public address {text}")
            addresses.append(str(address))
        return addresses

"""Refuse outbound fetches to non-public addresses (DESIGN.md "Verify, then trust": SSRF guard).

Used for every host a user controls: handle and did:web domains here, requestCrawl hosts in the
relay, proxy targets in the PDS. Development networks opt out with `allow_private`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
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


async def check_public_host(host: str, *, lookup: HostLookup = system_lookup) -> None:
    """Raise UnsafeAddress unless `host` is a name whose every address is public.

    IP literals are refused outright: atproto identifies servers by DNS name. Every resolved
    address is checked, not just the first, since the HTTP client may try any of them.
    """
    if parse_ip_literal(host) is not None:
        raise UnsafeAddress(f"refusing IP address host {host!r}")
    try:
        addresses = await lookup(host)
    except OSError as exc:
        raise UnsafeAddress(f"cannot resolve host {host!r}: {exc}") from exc
    if not addresses:
        raise UnsafeAddress(f"host {host!r} has no addresses")
    for text in addresses:
        address = parse_ip_literal(text)
        if address is None or not is_public_address(address):
            raise UnsafeAddress(f"host {host!r} resolves to non-public address {text}")
